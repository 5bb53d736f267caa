"""Safe YAML loading with node positions and hostile-input limits.

Policy files are YAML. This module turns a file into plain JSON-compatible data
while remembering where every value came from, so that later stages (schema
validation, expression compilation) can report located diagnostics.

Safety model
------------
* Only ``yaml.compose_all`` with the safe (libyaml when available) loader is
  used; Python values are built here from the node tree, never by PyYAML's
  constructors, so no tag can instantiate anything.
* Scalars are resolved like YAML 1.1 ``SafeLoader`` would (``str``, ``int``,
  ``float``, ``bool``, ``null``) except that timestamps stay the original
  string. Every other tag is refused.
* Size, nesting depth, alias expansion and document count are bounded by
  :class:`LoadLimits`; exceeding a bound is a diagnostic, never a hang, a
  ``RecursionError`` or a crash.

What comes back
---------------
``load_text`` / ``load_file`` return ``None`` when the *file* cannot be used:
it is too large (PP105), unreadable or not UTF-8 (PP108), has a YAML syntax
error anywhere (PP101), has too many documents (PP109), or nests so deeply that
it cannot be parsed safely (PP104). Otherwise a :class:`SourceFile` is returned:

* a document whose alias expansion is too large or recursive (PP106) or that
  nests deeper than ``max_depth`` (PP104) is dropped, the other documents are
  kept;
* node-level problems keep the document: a value with an unsupported tag
  (PP103) or an invalid value for its tag (PP110) is absent from its mapping
  (``None`` in a sequence, ``None`` as a document root); an entry whose key is
  not a string (PP107), is a merge key (PP103) or repeats an earlier key
  (PP102) is skipped, the first occurrence of a duplicate key wins.

Empty documents (a file with only comments, or an explicit ``---`` with no
content) produce no :class:`SourceDocument`; ``SourceDocument.index`` counts
every document of the stream, empty ones included, so it matches the file.

Diagnostic codes
----------------
======  ==========================================================
PP101   YAML syntax error (also unacceptable characters)
PP102   duplicate key in a mapping
PP103   unsupported tag, binary data, merge key ``<<``
PP104   nesting deeper than ``max_depth``
PP105   file larger than ``max_bytes``
PP106   alias expansion larger than ``max_nodes``, or recursive alias
PP107   mapping key that is not a string
PP108   unreadable file or invalid UTF-8
PP109   more than ``max_documents`` documents
PP110   scalar that is invalid for its tag (``!!int abc``, huge numbers)
======  ==========================================================

Positions
---------
PyYAML marks are 0-based; everything here is 1-based. An alias is expanded in
place, but its nodes keep the marks of the anchored original, so positions of
values reached through an alias point at the anchor's text.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.events import (
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from planpolicy.diagnostics import DiagnosticSink, Location
from planpolicy.nodemarks import JsonPath, NodeMark, ValueMarks, key_text
from planpolicy.yamltags import BOOL, CORE, FLOAT, INT, MAP, MERGE, NULL, SEQ, STR, TIMESTAMP, VALUE

__all__ = [
    "LoadLimits",
    "NodeMark",
    "SourceDocument",
    "SourceFile",
    "discover",
    "load_file",
    "load_file_text",
    "load_text",
    "restore_file",
]

#: The libyaml-backed safe loader when PyYAML was built with it.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Nesting the composer may be asked to build. PyYAML's composer recurses (in C
#: for libyaml), so anything that could be deeper is first measured with the
#: non-recursive event parser.
_COMPOSE_SAFE_DEPTH: Final = 500
#: Upper bound on ``max_depth`` actually applied: our own passes recurse too.
_MAX_SUPPORTED_DEPTH: Final = 256
#: Longest number literal accepted (Python refuses longer decimal ``int``s).
_MAX_NUMBER_CHARS: Final = 4300
#: How much of a user value is quoted back in a message.
_SHOW_CHARS: Final = 40


#: Resolved tags of plain scalars, shared by every file of the process.
_TAG_MEMO: dict[str, str] = {}
#: Bounds of the memo: values longer than this are resolved each time, and
#: nothing is added once it holds this many entries (hostile input cannot grow it).
_TAG_MEMO_VALUE_CHARS: Final = 64
_TAG_MEMO_ENTRIES: Final = 4096


class _Loader(_SAFE_LOADER):  # type: ignore[misc]
    """The safe loader with a short cut through PyYAML's Python resolver.

    libyaml composes in C but calls the Python resolver for every node (to
    resolve its tag, and to descend into and ascend from it for path
    resolvers). Without path resolvers and wildcard implicit resolvers (PyYAML's
    safe resolver has neither; this is checked for every loader), the tag
    depends only on the node kind, whether the scalar is plain
    (``implicit[0]``) and its text: quoted scalars, sequences and mappings get
    the default tags, a plain scalar whose first character starts no implicit
    resolver is a string, and any other plain scalar is resolved by PyYAML
    once and its tag remembered. The descend / ascend hooks then do nothing,
    so they are C callables that ignore their arguments (no Python frame per
    node). When the conditions do not hold, PyYAML's own methods are used.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        if (
            self.yaml_path_resolvers
            or self.yaml_implicit_resolvers is not _IMPLICIT
            or None in _IMPLICIT
        ):
            self.resolve = super().resolve  # type: ignore[method-assign]
            self.descend_resolver = super().descend_resolver
            self.ascend_resolver = super().ascend_resolver
        else:
            self.descend_resolver = _NO_PATHS.get  # (node, index) -> index, ignored
            self.ascend_resolver = tuple  # () -> (), ignored

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if not implicit[0]:
                return STR
            tag = _TAG_MEMO.get(value)
            if tag is None:
                tag = self._resolve_plain(value, implicit)
            return tag
        return SEQ if kind is SequenceNode else MAP

    def _resolve_plain(self, value: str, implicit: tuple[bool, bool]) -> str:
        if value and value[0] not in _IMPLICIT_FIRST:
            tag = STR
        else:
            tag = super().resolve(ScalarNode, value, implicit)
        if len(value) <= _TAG_MEMO_VALUE_CHARS and len(_TAG_MEMO) < _TAG_MEMO_ENTRIES:
            _TAG_MEMO[value] = tag
        return tag


_IMPLICIT: Final = _SAFE_LOADER.yaml_implicit_resolvers
#: First characters for which PyYAML has an implicit resolver ("" for the empty scalar).
_IMPLICIT_FIRST: Final = frozenset(key for key in _IMPLICIT if key)
_NO_PATHS: Final[dict[Any, Any]] = {}

_LOADER: Final = _Loader

_BOOLS: Final = {
    "yes": True,
    "no": False,
    "true": True,
    "false": False,
    "on": True,
    "off": False,
}

#: YAML 1.1 line breaks (what PyYAML and libyaml count lines by).
_BREAK_RE: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
#: Characters YAML does not allow in a stream.
_NON_PRINTABLE_RE: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
#: The ASCII characters :data:`_NON_PRINTABLE_RE` refuses (C0 controls but tab,
#: line feed and carriage return; DEL).
_ASCII_REFUSED: Final = tuple(chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))


def _refused_character(text: str) -> re.Match[str] | None:
    """The first character YAML does not allow in ``text``, if any.

    ASCII text (nearly every policy file) is checked with one substring
    search per refused character, ~6x faster than the regex; the regex finds
    where the first one is.
    """
    if text.isascii() and not any(char in text for char in _ASCII_REFUSED):
        return None
    return _NON_PRINTABLE_RE.search(text)


_ANCHOR_RE: Final = re.compile(r"&([^\s,\[\]{}]+)")
_ALIAS_RE: Final = re.compile(r"\*([^\s,\[\]{}]+)")
_QUOTED_RE: Final = re.compile(r"'([^'\n]{1,40})'")

_ESCAPES: Final = {
    "0": "\0",
    "a": "\x07",
    "b": "\x08",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\x0b",
    "f": "\x0c",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_ESCAPES: Final = {"x": 2, "u": 4, "U": 8}


@dataclass(frozen=True)
class LoadLimits:
    """Bounds that keep hostile input from exhausting time or memory.

    ``max_bytes`` is the file size in bytes; ``max_depth`` the nesting of
    mappings and sequences (a root collection is level 1); ``max_nodes`` the
    number of nodes (keys, values and items) after alias expansion;
    ``max_documents`` the number of YAML documents in one file.
    """

    max_bytes: int = 1_000_000
    max_depth: int = 64
    max_nodes: int = 200_000
    max_documents: int = 100


_DEFAULT_LIMITS: Final = LoadLimits()


@dataclass(frozen=True)
class SourceDocument:
    """One YAML document of a file: its data and the position of every node.

    ``data`` is plain JSON-compatible data. ``marks`` maps a JSON path (``()`` is
    the root) to the position of the value node there; ``key_marks`` maps the
    path of each mapping entry to the position of its key. ``lines`` are the
    file's source lines, split the way YAML counts lines.
    """

    path: str
    index: int
    data: Any
    marks: Mapping[JsonPath, NodeMark]
    key_marks: Mapping[JsonPath, NodeMark]
    lines: tuple[str, ...]

    def location(self, path: Sequence[str | int]) -> Location:
        """Position of the value at ``path``, or of its nearest existing ancestor.

        The root of a document without marks is line 1, column 1.
        """
        mark = self._nearest_mark(tuple(path))
        if mark is None:
            return Location(self.path, 1, 1)
        return _location(self.path, mark)

    def key_location(self, path: Sequence[str | int]) -> Location:
        """Position of the key of the mapping entry at ``path``; else :meth:`location`."""
        key = tuple(path)
        if key in self.key_marks:
            return _location(self.path, self.key_marks[key])
        return self.location(key)

    def expr_location(self, path: Sequence[str | int], line: int, column: int) -> Location:
        """Map a 1-based ``(line, column)`` inside the string at ``path`` to the file.

        Exact for single-line plain and quoted scalars (escapes included) and for
        literal block scalars; a best effort for folded and multi-line plain or
        quoted scalars. Never raises: falls back to :meth:`location`.
        """
        key = tuple(path)
        try:
            found = self._expr_position(key, line, column)
        except Exception:  # pragma: no cover - a position is never worth a crash
            found = None
        if found is None:
            return self.location(key)
        return Location(self.path, found[0] + 1, found[1] + 1)

    # -- helpers -----------------------------------------------------------

    def _nearest_mark(self, path: JsonPath) -> NodeMark | None:
        for size in range(len(path), -1, -1):
            prefix = path[:size]
            if prefix in self.marks:
                return self.marks[prefix]
        return None

    def _value_at(self, path: JsonPath) -> object:
        value: object = self.data
        for part in path:
            if isinstance(value, dict):
                if not isinstance(part, str) or part not in value:
                    return None
                value = value[part]
            elif isinstance(value, list):
                if isinstance(part, bool) or not isinstance(part, int):
                    return None
                if not 0 <= part < len(value):
                    return None
                value = value[part]
            else:
                return None
        return value

    def _expr_position(self, path: JsonPath, line: int, column: int) -> tuple[int, int] | None:
        """0-based file (line, column) for a position inside a string value."""
        if path not in self.marks:
            return None
        text = self._value_at(path)
        if not isinstance(text, str):
            return None
        mark = self.marks[path]
        parts = text.split("\n")
        if line < 1 or line > len(parts):
            return None
        column = min(max(column, 1), len(parts[line - 1]) + 1)
        start = _skip_properties(self.lines, mark.line - 1, mark.column - 1)
        if start is None:
            return None
        if mark.style is not None and self.lines[start[0]][start[1]] != mark.style:
            return None  # not where we expect the quote / block indicator
        if mark.style == "|":
            found = _literal_position(self.lines, start, parts, line, column)
            if found is not None:
                return found
        offset = sum(len(part) + 1 for part in parts[: line - 1]) + column - 1
        segments = _segments(self.lines, mark, start)
        return _align(text, segments, offset)


@dataclass(frozen=True)
class SourceFile:
    """A loaded file: its display path and its non-empty documents."""

    path: str
    documents: tuple[SourceDocument, ...]


# ---------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------


def load_text(
    text: str,
    path: str,
    sink: DiagnosticSink,
    *,
    limits: LoadLimits = _DEFAULT_LIMITS,
) -> SourceFile | None:
    """Load YAML ``text`` shown as ``path``; problems go to ``sink``.

    Returns ``None`` when the file cannot be used at all (see the module
    docstring for what is dropped and what is kept).
    """
    if len(text) > limits.max_bytes or (
        4 * len(text) > limits.max_bytes
        and len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes
    ):
        _too_large(path, sink, limits)
        return None
    return _load(text, path, sink, limits)


def load_file(
    path: str | Path,
    sink: DiagnosticSink,
    *,
    display_path: str | None = None,
    limits: LoadLimits = _DEFAULT_LIMITS,
) -> SourceFile | None:
    """Read and load the YAML file at ``path``; problems go to ``sink``.

    ``display_path`` is how the file is named in diagnostics (default: ``path``
    as given). The size is checked before the file is read, and only regular
    files are opened, so a FIFO or device cannot hang the loader.
    """
    return load_file_text(path, sink, display_path=display_path, limits=limits)[0]


def load_file_text(
    path: str | Path,
    sink: DiagnosticSink,
    *,
    display_path: str | None = None,
    limits: LoadLimits = _DEFAULT_LIMITS,
) -> tuple[SourceFile | None, str | None]:
    """:func:`load_file`, also returning the text it loaded (None if it read none)."""
    shown = display_path if display_path is not None else str(path)
    text = _read_text(path, sink, shown, limits)
    return (None, None) if text is None else (_load(text, shown, sink, limits), text)


def restore_file(path: str, text: str, documents: Sequence[tuple[int, Any]]) -> SourceFile:
    """The :class:`SourceFile` that loading ``text`` gave: its documents' ``(index, data)``.

    For files loaded elsewhere (another process) that sent back only their
    text and plain data. Each document's positions are found by composing
    its text again when one is first asked for.
    """
    text = text.removeprefix("\ufeff")
    lines = _split_lines(text)
    restored = []
    for index, data in documents:
        marks = _Recomposed(text, index)
        restored.append(
            SourceDocument(
                path=path,
                index=index,
                data=data,
                marks=_LazyMarks(marks, keys=False),
                key_marks=_LazyMarks(marks, keys=True),
                lines=lines,
            )
        )
    return SourceFile(path, tuple(restored))


class _Recomposed:
    """A document's positions, from its text composed again on first use."""

    def __init__(self, text: str, index: int) -> None:
        self.text = text
        self.index = index
        self._marks: tuple[Mapping[JsonPath, NodeMark], Mapping[JsonPath, NodeMark]] | None = None

    def marks(self, keys: bool) -> Mapping[JsonPath, NodeMark]:
        if self._marks is None:
            values: Mapping[JsonPath, NodeMark] = {}
            key_marks: Mapping[JsonPath, NodeMark] = {}
            for index, root in enumerate(yaml.compose_all(self.text, Loader=_LOADER)):
                if index == self.index:
                    values = ValueMarks(root)
                    key_marks = values.keys_of()
                    break
            self._marks = (values, key_marks)
        return self._marks[1 if keys else 0]


class _LazyMarks(Mapping[JsonPath, NodeMark]):
    """Value or key positions of a restored document (see :func:`restore_file`)."""

    def __init__(self, source: _Recomposed, *, keys: bool) -> None:
        self._source = source
        self._keys = keys

    def __getitem__(self, path: JsonPath) -> NodeMark:
        return self._source.marks(self._keys)[path]

    def __contains__(self, path: object) -> bool:
        return path in self._source.marks(self._keys)

    def __iter__(self) -> Iterator[JsonPath]:
        return iter(self._source.marks(self._keys))

    def __len__(self) -> int:
        return len(self._source.marks(self._keys))

    def __reduce__(self) -> tuple[type[dict[JsonPath, NodeMark]], tuple[dict[JsonPath, NodeMark]]]:
        return (dict, (dict(self._source.marks(self._keys)),))


def _read_text(
    path: str | Path, sink: DiagnosticSink, shown: str, limits: LoadLimits
) -> str | None:
    """The text of the file at ``path``, or None (reported) when it cannot be used."""
    where = Location(shown)
    try:
        # non-blocking so that opening a FIFO cannot wait for a writer
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(descriptor)
            if stat.S_ISDIR(info.st_mode):
                sink.error("PP108", "cannot read file: it is a directory", where)
                return None
            if not stat.S_ISREG(info.st_mode):
                sink.error("PP108", "cannot read file: it is not a regular file", where)
                return None
            if info.st_size > limits.max_bytes:
                _too_large(shown, sink, limits, info.st_size)
                return None
            raw = handle.read(limits.max_bytes + 1)
    except IsADirectoryError:
        sink.error("PP108", "cannot read file: it is a directory", where)
        return None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        sink.error("PP108", f"cannot read file: {reason}", where)
        return None
    if len(raw) > limits.max_bytes:  # grew since stat
        _too_large(shown, sink, limits)
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = raw[: exc.start].decode("utf-8", "replace").removeprefix("\ufeff")
        line, column = _position_after(prefix)
        bad = raw[exc.start]
        hint = "save the file with utf-8 encoding"
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = "the file looks like utf-16; save it with utf-8 encoding"
        sink.error(
            "PP108",
            f"file is not valid utf-8 (byte `0x{bad:02x}`)",
            Location(shown, line, column),
            hint=hint,
        )
        return None
    return text


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """Expand ``paths`` into the policy files to load.

    Directories are searched recursively for ``*.yaml`` / ``*.yml`` files
    (case-insensitive suffix; hidden files and directories, whose name starts
    with ``.``, are skipped; symbolic links to directories are not followed).
    Files named explicitly are kept whatever their suffix. The result is sorted
    and de-duplicated (two spellings of the same file count once).

    Raises :class:`FileNotFoundError` for a path that does not exist.
    """
    found: list[tuple[Path, str]] = []  # (file, its real path)
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise FileNotFoundError(2, "no such file or directory", str(root))
        if not root.is_dir():
            found.append((root, os.path.realpath(root)))
            continue
        for directory, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
            real_directory: str | None = None
            for name in filenames:
                if name.startswith("."):
                    continue
                if name.lower().endswith((".yaml", ".yml")):
                    file = os.path.join(directory, name)
                    if os.path.islink(file):
                        real = os.path.realpath(file)
                    else:  # resolving the directory once is enough
                        if real_directory is None:
                            real_directory = os.path.realpath(directory)
                        real = os.path.join(real_directory, name)
                    found.append((Path(file), real))
    result: list[Path] = []
    seen: set[str] = set()
    for candidate, identity in sorted(found, key=_first):
        if identity not in seen:
            seen.add(identity)
            result.append(candidate)
    return result


def _first(pair: tuple[Path, str]) -> Path:
    return pair[0]


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


class _DocumentRefused(Exception):
    """Raised inside a document pass once its diagnostic has been reported."""


class _FileRefused(Exception):
    """Raised inside the file pass once its diagnostic has been reported."""


class _CheckNeeded(Exception):
    """A document built without measuring first is near a limit: measure it."""


def _too_large(
    path: str, sink: DiagnosticSink, limits: LoadLimits, size: int | None = None
) -> None:
    detail = f" ({size} bytes)" if size is not None else ""
    sink.error(
        "PP105",
        f"file is larger than {limits.max_bytes} bytes{detail}",
        Location(path),
        hint="split the policy into several files",
    )


def _split_lines(text: str) -> tuple[str, ...]:
    """Source lines, split where YAML counts a line break.

    ``str.splitlines`` also splits at a few control characters YAML does not
    count as breaks, but those are refused before this is called.
    """
    return tuple(text.splitlines())


def _position_after(prefix: str) -> tuple[int, int]:
    """1-based (line, column) of the character that follows ``prefix``."""
    parts = _BREAK_RE.split(prefix)
    return len(parts), len(parts[-1]) + 1


def _load(text: str, path: str, sink: DiagnosticSink, limits: LoadLimits) -> SourceFile | None:
    text = text.removeprefix("\ufeff")
    bad = _refused_character(text)
    if bad is not None:
        line, column = _position_after(text[: bad.start()])
        sink.error(
            "PP101",
            f"yaml syntax error: unacceptable character `U+{ord(bad.group()):04X}`",
            Location(path, line, column),
            hint="yaml does not allow control characters; write them as escapes "
            "in a double-quoted string",
        )
        return None
    lines = _split_lines(text)
    max_depth = max(1, min(limits.max_depth, _MAX_SUPPORTED_DEPTH))
    documents: list[SourceDocument] = []
    aliases = "*" in text
    try:
        if _depth_bound(text, lines) > _COMPOSE_SAFE_DEPTH:
            _check_parse_depth(text, path, sink, max_depth)
        for index, root in enumerate(yaml.compose_all(text, Loader=_LOADER)):
            if index >= limits.max_documents:
                sink.error(
                    "PP109",
                    f"too many documents: a file may hold at most {limits.max_documents}",
                    _node_location(path, root),
                    hint="split the documents into several files",
                )
                return None
            if _is_empty_document(root):
                continue
            document = _build_document(
                root,
                path=path,
                index=index,
                lines=lines,
                sink=sink,
                limits=limits,
                max_depth=max_depth,
                aliases=aliases,
            )
            if document is not None:
                documents.append(document)
    except _FileRefused:
        return None
    except yaml.MarkedYAMLError as exc:
        _report_marked_error(exc, path, text, sink, max_depth)
        return None
    except yaml.YAMLError as exc:
        _report_yaml_error(exc, path, text, sink)
        return None
    except RecursionError:
        sink.error(
            "PP104",
            "nesting is too deep to parse",
            Location(path),
            hint=f"keep mappings and sequences within {max_depth} levels",
        )
        return None
    return SourceFile(path, tuple(documents))


def _is_empty_document(root: Node) -> bool:
    return (
        isinstance(root, ScalarNode)
        and root.tag == NULL
        and root.value == ""
        and not root.style  # CSafeLoader reports plain as "", SafeLoader as None
    )


def _depth_bound(text: str, lines: tuple[str, ...]) -> int:
    """A cheap upper bound on the nesting depth of any document in ``text``.

    Block collections nest only at increasing columns (plus one indentless
    sequence per level) and each one opened on a line needs an indicator
    (``-``, ``?`` or ``:``); flow collections need a bracket (plus one implicit
    single-pair mapping each).
    """
    flow = text.count("[") + text.count("{")
    if 2 * (max(map(len, lines), default=0) + 2) + 2 * flow + 2 <= _COMPOSE_SAFE_DEPTH:
        return 0  # no line is long enough to matter
    block = 0
    for line in lines:
        stripped = line.lstrip()
        if not stripped or stripped[0] == "#":
            continue
        levels = (
            len(line)
            - len(stripped)
            + stripped.count("-")
            + stripped.count("?")
            + stripped.count(":")
        )
        block = max(block, levels)
    return 2 * (block + 2) + 2 * flow + 2


def _check_parse_depth(text: str, path: str, sink: DiagnosticSink, max_depth: int) -> None:
    """Measure real nesting with the (non-recursive) event parser.

    Raises :class:`_FileRefused` when a document nests deeper than the composer
    can safely build; shallower violations are left to the document pass so
    that they are reported the same way whatever the pre-scan decided.
    """
    depth = 0
    first: tuple[int, int] | None = None
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, SequenceStartEvent | MappingStartEvent):
            depth += 1
            mark = event.start_mark
            if depth > max_depth and first is None and mark is not None:
                first = (mark.line + 1, mark.column + 1)
            if depth > _COMPOSE_SAFE_DEPTH:
                sink.error(
                    "PP104",
                    f"nesting deeper than {max_depth} levels",
                    Location(path, *(first or (1, 1))),
                    hint="flatten the structure",
                )
                raise _FileRefused
        elif isinstance(event, SequenceEndEvent | MappingEndEvent):
            depth -= 1
        elif isinstance(event, DocumentEndEvent):
            first = None


def _first_too_deep(text: str, max_depth: int) -> tuple[int, int] | None:
    """1-based position of the first collection nested deeper than ``max_depth``."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, SequenceStartEvent | MappingStartEvent):
                depth += 1
                mark = event.start_mark
                if depth > max_depth and mark is not None:
                    return mark.line + 1, mark.column + 1
            elif isinstance(event, SequenceEndEvent | MappingEndEvent):
                depth -= 1
            elif isinstance(event, DocumentEndEvent):
                depth = 0
    except yaml.YAMLError:
        return None
    return None


def _clean_problem(problem: str) -> str:
    """PyYAML's wording in house style: lowercase start, no period, backticks."""
    problem = problem.strip().rstrip(".")
    problem = _QUOTED_RE.sub(r"`\1`", problem)
    return problem[:1].lower() + problem[1:]


def _report_marked_error(
    exc: yaml.MarkedYAMLError, path: str, text: str, sink: DiagnosticSink, max_depth: int
) -> None:
    mark = exc.problem_mark or exc.context_mark
    where = Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path)
    problem = _clean_problem(exc.problem or exc.context or "invalid yaml")
    context = exc.context
    context_mark = exc.context_mark
    if problem == "exceeded maximum nesting depth" and mark is not None:
        # libyaml's own guard; point at the first node that breaks *our* limit
        lines = _split_lines(text)
        last = lines[mark.line] if mark.line < len(lines) else ""
        before = [*lines[: mark.line], last[: mark.column]]
        first = _first_too_deep("\n".join(before), max_depth)
        if first is not None:
            where = Location(path, *first)
        sink.error(
            "PP104",
            f"nesting deeper than {max_depth} levels",
            where,
            hint="flatten the structure",
        )
        return
    hint: str | None = None
    if context and context.startswith("found duplicate anchor"):
        name = None
        lines = _split_lines(text)
        if mark is not None and mark.line < len(lines):
            found = _ANCHOR_RE.match(lines[mark.line], mark.column)
            name = found.group(1) if found else None
        message = f"duplicate anchor `{name}`" if name else "duplicate anchor"
        if context_mark is not None:
            hint = f"first defined on line {context_mark.line + 1}"
        sink.error("PP101", f"yaml syntax error: {message}", where, hint=hint)
        return
    if problem == "found undefined alias" and mark is not None:  # libyaml omits the name
        lines = _split_lines(text)
        if mark.line < len(lines):
            found = _ALIAS_RE.match(lines[mark.line], mark.column)
            if found:
                problem = f"found undefined alias `{found.group(1)}`"
    if context and context_mark is not None:
        hint = f"{_clean_problem(context)} (line {context_mark.line + 1}, column "
        hint += f"{context_mark.column + 1})"
    elif context:
        hint = _clean_problem(context)
    sink.error("PP101", f"yaml syntax error: {problem}", where, hint=hint)


def _report_yaml_error(exc: yaml.YAMLError, path: str, text: str, sink: DiagnosticSink) -> None:
    where = Location(path)
    reason = "invalid yaml"
    if isinstance(exc, ReaderError):
        position = min(max(exc.position, 0), len(text))
        where = Location(path, *_position_after(text[:position]))
        reason = _clean_problem(str(exc.reason))
    sink.error("PP101", f"yaml syntax error: {reason}", where)


# ---------------------------------------------------------------------------
# building one document
# ---------------------------------------------------------------------------


class _Absent:
    """Marker for a value that was refused (and is therefore left out)."""


_ABSENT: Final = _Absent()


def _node_location(path: str, node: Node) -> Location:
    start, end = node.start_mark, node.end_mark
    return Location(path, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _location(path: str, mark: NodeMark) -> Location:
    return Location(path, mark.line, mark.column, mark.end_line, mark.end_column)


def _show(value: str) -> str:
    """A user value for a message: single line, bounded length, no backticks."""
    value = value.replace("`", "'")
    value = _BREAK_RE.sub(" ", value)
    if len(value) > _SHOW_CHARS:
        value = value[: _SHOW_CHARS - 1] + "…"
    return value


def _show_tag(tag: str) -> str:
    if tag.startswith(CORE):
        return "!!" + tag[len(CORE) :]
    return tag


def _build_document(
    root: Node,
    *,
    path: str,
    index: int,
    lines: tuple[str, ...],
    sink: DiagnosticSink,
    limits: LoadLimits,
    max_depth: int,
    aliases: bool = True,
) -> SourceDocument | None:
    """Plain data and marks for ``root``; ``None`` (reported) if it breaks a limit.

    Without aliases (``aliases`` false: the text has no ``*``) no node is
    shared, so building the document visits each node once: it is built
    directly, counting nodes and checking depth on the way, its diagnostics
    held back. Only if a limit is reached, or a collection would be skipped
    unvisited, is that attempt dropped and the document measured first as
    below, so what is reported never depends on which way was taken.
    """
    if not aliases:
        counted = _DocumentBuilder(path, DiagnosticSink(limit=sys.maxsize), limits, max_depth)
        try:
            data = counted.build_counted(root)
        except _CheckNeeded:
            pass
        else:
            sink.extend(counted.sink)
            return _document(root, data, path, index, lines)
    builder = _DocumentBuilder(path, sink, limits, max_depth)
    try:
        builder.check(root)
    except _DocumentRefused:
        return None
    return _document(root, builder.build(root, 0), path, index, lines)


def _document(
    root: Node, data: Any, path: str, index: int, lines: tuple[str, ...]
) -> SourceDocument:
    marks = ValueMarks(root)  # positions are found in the node tree when asked
    return SourceDocument(
        path=path,
        index=index,
        data=None if data is _ABSENT else data,
        marks=marks,
        key_marks=marks.keys_of(),
        lines=lines,
    )


class _DocumentBuilder:
    """Turns one composed document into plain data (its node tree keeps the positions).

    :meth:`check` first walks the node graph once (memoising shared nodes) to
    measure the expanded size and nesting and to find recursive aliases, so an
    alias bomb is refused without being expanded. :meth:`build` then expands
    it, which is known to stay within the limits. For a document without
    aliases, :meth:`build_counted` does both in one walk (see
    :func:`_build_document`).
    """

    def __init__(self, path: str, sink: DiagnosticSink, limits: LoadLimits, max_depth: int):
        self.path = path
        self.sink = sink
        self.max_depth = max_depth
        self.max_nodes = max(0, limits.max_nodes)
        self._sizes: dict[int, int] = {}
        self._heights: dict[int, int] = {}
        self._shared: set[int] = set()  # collections reached more than once (aliases)
        #: Nodes :meth:`build_counted` may still add; ``None`` in :meth:`build`.
        self._budget: int | None = None

    def build_counted(self, root: Node) -> Any:
        """:meth:`build` for a tree without shared nodes, checking the limits on the way.

        Raises :class:`_CheckNeeded` when the document nests deeper than
        ``max_depth``, has more than ``max_nodes`` nodes, or holds a collection
        that building skips (under a refused key or tag), which the limits
        still cover.
        """
        self._budget = self.max_nodes - 1
        return self.build(root, 0)

    def _count(self, depth: int, nodes: int) -> None:
        """Account for a collection's ``nodes`` children (at ``depth``) while building counted."""
        assert self._budget is not None
        self._budget -= nodes
        if self._budget < 0 or depth >= self.max_depth:
            raise _CheckNeeded

    # -- limits ---------------------------------------------------------------

    def check(self, root: Node) -> None:
        """Report (and raise :class:`_DocumentRefused`) if ``root`` breaks a limit."""
        if isinstance(root, ScalarNode):
            return
        size = self._measure(root, 1, set())
        if size > self.max_nodes:
            node = self._overflow_node(root, self.max_nodes)
            self.sink.error(
                "PP106",
                f"document expands to more than {self.max_nodes} nodes (alias bomb?)",
                _node_location(self.path, node),
                hint="use fewer aliases, or smaller anchored values",
            )
            raise _DocumentRefused

    @staticmethod
    def _children(node: Node) -> Iterable[Node]:
        if isinstance(node, SequenceNode):
            return iter(node.value)  # type: ignore[no-any-return]
        return chain.from_iterable(node.value)

    def _measure(self, node: Node, depth: int, active: set[int]) -> int:
        """Expanded size of collection ``node`` (capped at ``max_nodes + 1``).

        Fills the size and height memos (collections only: a scalar is always one
        node and adds no nesting).
        """
        key = id(node)
        size = self._sizes.get(key)
        if size is not None:
            self._shared.add(key)
            if depth + self._heights[key] - 1 > self.max_depth:
                self._too_deep(self._deep_node(node, depth))
            return size
        if depth > self.max_depth:
            self._too_deep(node)
        if key in active:
            self.sink.error(
                "PP106",
                "recursive alias: this anchored value contains an alias to itself",
                _node_location(self.path, node),
                hint="an alias may only refer to a value that does not contain it",
            )
            raise _DocumentRefused
        active.add(key)
        cap = self.max_nodes + 1
        heights = self._heights
        total = 1
        height = 0
        for child in self._children(node):
            if isinstance(child, ScalarNode):
                total += 1
            else:
                total += self._measure(child, depth + 1, active)
                child_height = heights[id(child)]
                height = max(height, child_height)
            if total >= cap:
                total = cap
                break
        active.discard(key)
        self._sizes[key] = total
        heights[key] = height + 1
        return total

    def _deep_node(self, node: Node, depth: int) -> Node:
        """The first collection below ``node`` (at ``depth``) deeper than allowed."""
        while depth <= self.max_depth:
            for child in self._children(node):
                height = self._heights.get(id(child), 0)
                if height and depth + height > self.max_depth:
                    node = child
                    depth += 1
                    break
            else:  # pragma: no cover - the memo says there is one
                return node
        return node

    def _too_deep(self, node: Node) -> None:
        self.sink.error(
            "PP104",
            f"nesting deeper than {self.max_depth} levels",
            _node_location(self.path, node),
            hint="flatten the structure",
        )
        raise _DocumentRefused

    def _overflow_node(self, root: Node, budget: int) -> Node:
        """Where to report an expansion past the node budget.

        Follows the document (in order) to the node that exceeds the budget, but
        stops before entering a node reached through an alias: its marks are the
        anchor's, so the sequence holding the alias, or the key of the mapping
        entry, is the better place to point at.
        """
        node = root
        while True:
            if budget == 0 or isinstance(node, ScalarNode):
                return node
            budget -= 1
            previous: Node = node
            for child in self._children(node):
                if isinstance(child, ScalarNode):
                    size = 1
                else:
                    size = self._sizes.get(id(child), self.max_nodes + 1)
                if size > budget:
                    if id(child) in self._shared:
                        return previous if isinstance(node, MappingNode) else node
                    node = child
                    break
                budget -= size
                previous = child
            else:  # pragma: no cover - the sizes say there is one
                return node

    # -- values ---------------------------------------------------------------

    def build(self, node: Node, depth: int) -> Any:
        """Plain data for ``node`` (``depth`` collections down), or :data:`_ABSENT` if refused.

        Strings (most values and keys) are taken inline rather than by a call.
        """
        if isinstance(node, ScalarNode):
            if node.tag == STR:
                return node.value
            return self._scalar(node)
        children = node.value
        counting = self._budget is not None
        below = depth + 1
        build = self.build
        if isinstance(node, SequenceNode):
            if counting:
                self._count(depth, len(children))
            if node.tag != SEQ:
                return self._unsupported(node)
            items: list[Any] = []
            for child in children:
                if child.tag == STR and isinstance(child, ScalarNode):
                    items.append(child.value)
                    continue
                item = build(child, below)
                items.append(None if item is _ABSENT else item)
            return items
        if counting:
            self._count(depth, 2 * len(children))
        if node.tag != MAP:
            return self._unsupported(node)
        result: dict[str, Any] = {}
        key_nodes: dict[str, Node] = {}
        for key_node, value_node in children:
            if key_node.tag == STR and isinstance(key_node, ScalarNode):
                key = key_node.value
            else:
                key = self._key(key_node)
                if key is None:
                    if counting and not (
                        isinstance(key_node, ScalarNode) and isinstance(value_node, ScalarNode)
                    ):
                        raise _CheckNeeded
                    continue
            if key in key_nodes:
                if counting and not isinstance(value_node, ScalarNode):
                    raise _CheckNeeded
                self.sink.error(
                    "PP102",
                    f"duplicate key `{_show(key)}`",
                    _node_location(self.path, key_node),
                    hint=f"first defined on line {key_nodes[key].start_mark.line + 1}; "
                    "the first one is used",
                )
                continue
            key_nodes[key] = key_node
            if value_node.tag == STR and isinstance(value_node, ScalarNode):
                result[key] = value_node.value
                continue
            value = build(value_node, below)
            if value is not _ABSENT:
                result[key] = value
        return result

    def _unsupported(self, node: Node) -> _Absent:
        if self._budget is not None and not isinstance(node, ScalarNode):
            raise _CheckNeeded  # its children are not built, but count against the limits
        tag = _show_tag(node.tag)
        hint = "policy files only use plain yaml data: mappings, sequences, strings, "
        hint += "numbers, booleans and null"
        self.sink.error(
            "PP103", f"unsupported tag `{_show(tag)}`", _node_location(self.path, node), hint=hint
        )
        return _ABSENT

    def _invalid(self, node: ScalarNode, what: str) -> _Absent:
        self.sink.error(
            "PP110",
            f"`{_show(node.value)}` is not a valid {what}",
            _node_location(self.path, node),
            hint=f"remove the `{_show(_show_tag(node.tag))}` tag or fix the value",
        )
        return _ABSENT

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        value: str = node.value
        if tag in (STR, TIMESTAMP):
            return value
        if tag == NULL:
            return None
        if tag == BOOL:
            flag = _BOOLS.get(value.lower())
            return self._invalid(node, "boolean") if flag is None else flag
        if tag == INT:
            if len(value) > _MAX_NUMBER_CHARS:
                return self._too_long(node)
            if value.isdecimal() and (value[0] != "0" or value == "0"):
                return int(value)  # what _parse_int gives, without its cases
            number = _parse_int(value)
            return self._invalid(node, "integer") if number is None else number
        if tag == FLOAT:
            if len(value) > _MAX_NUMBER_CHARS:
                return self._too_long(node)
            real = _parse_float(value)
            return self._invalid(node, "number") if real is None else real
        if not node.style and ((tag == VALUE and value == "=") or (tag == MERGE and value == "<<")):
            return value  # plain `=` / `<<` used as a value: just text
        return self._unsupported(node)

    def _too_long(self, node: ScalarNode) -> _Absent:
        self.sink.error(
            "PP110",
            f"number `{_show(node.value)}` is too long",
            _node_location(self.path, node),
            hint=f"numbers may have at most {_MAX_NUMBER_CHARS} characters; quote it "
            "to use it as text",
        )
        return _ABSENT

    def _key(self, node: Node) -> str | None:
        """The string key of a mapping entry, or ``None`` (reported) to skip it."""
        key = key_text(node)
        if key is not None:
            return key
        where = _node_location(self.path, node)
        if not isinstance(node, ScalarNode):
            shape = "sequence" if isinstance(node, SequenceNode) else "mapping"
            self.sink.error(
                "PP107",
                f"mapping keys must be strings, not a {shape}",
                where,
                hint="use a plain or quoted string as the key",
            )
            return None
        tag = node.tag
        value: str = node.value
        if tag == MERGE and not node.style:
            self.sink.error(
                "PP103",
                "merge keys (`<<`) are not supported",
                where,
                hint='write the keys out, or quote it (`"<<"`) to use it as a plain key',
            )
            return None
        kinds = {INT: "an integer", FLOAT: "a number", BOOL: "a boolean", NULL: "null"}
        kind = kinds.get(tag)
        if kind is None:
            self._unsupported(node)
            return None
        if value == "":
            message = "mapping keys must be strings, this key is empty"
            hint = 'write a key before the `:` (quote it as `""` for an empty string)'
        else:
            message = f"mapping keys must be strings, `{_show(value)}` is read as {kind}"
            hint = f'quote the key to use it as text: `"{_show(value)}"`'
        self.sink.error("PP107", message, where, hint=hint)
        return None


def _parse_int(text: str) -> int | None:
    """YAML 1.1 integer (as ``SafeConstructor.construct_yaml_int``); ``None`` if invalid."""
    value = text.replace("_", "")
    sign = 1
    if value[:1] == "-":
        sign = -1
    if value[:1] in ("-", "+"):
        value = value[1:]
    try:
        if value == "0":
            return 0
        if value.startswith("0b"):
            return sign * int(value[2:], 2)
        if value.startswith("0x"):
            return sign * int(value[2:], 16)
        if value.startswith("0"):
            return sign * int(value, 8)
        if ":" in value:
            result = 0
            for part in value.split(":"):
                result = result * 60 + int(part)
            return sign * result
        return sign * int(value)
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
    """YAML 1.1 float (as ``SafeConstructor.construct_yaml_float``); ``None`` if invalid."""
    value = text.replace("_", "").lower()
    sign = 1.0
    if value[:1] == "-":
        sign = -1.0
    if value[:1] in ("-", "+"):
        value = value[1:]
    try:
        if value == ".inf":
            return sign * math.inf
        if value == ".nan":
            return math.nan
        if ":" in value:
            result = 0.0
            for part in value.split(":"):
                result = result * 60 + float(part)
            return sign * result
        return sign * float(value)
    except (ValueError, OverflowError):
        return None


# ---------------------------------------------------------------------------
# positions inside scalars
# ---------------------------------------------------------------------------

#: A piece of a scalar on one physical line: (0-based line, text, column of each char).
_Segment = tuple[int, str, list[int]]


def _skip_properties(lines: tuple[str, ...], line: int, column: int) -> tuple[int, int] | None:
    """Skip a node's anchor / tag (where PyYAML's start mark points) to its content."""
    while 0 <= line < len(lines):
        text = lines[line]
        while column < len(text) and text[column] in " \t":
            column += 1
        if column >= len(text) or text[column] == "#":
            line += 1
            column = 0
            continue
        if text[column] in "&!":
            while column < len(text) and text[column] not in " \t":
                column += 1
            continue
        return line, column
    return None


def _literal_position(
    lines: tuple[str, ...],
    header: tuple[int, int],
    parts: list[str],
    line: int,
    column: int,
) -> tuple[int, int] | None:
    """Exact position in a literal block scalar: one value line per file line."""
    first = header[0] + 1
    indent = None
    for number, part in enumerate(parts):
        if not part or first + number >= len(lines):
            continue
        raw = lines[first + number]
        prefix = raw[: len(raw) - len(part)]
        if raw.endswith(part) and prefix.strip(" ") == "":
            indent = len(prefix)
        break
    if indent is None or first + line - 1 >= len(lines):
        return None
    return first + line - 1, indent + column - 1


def _unquote(raw: str, column: int, double: bool) -> tuple[str, list[int]]:
    """Unescape one line's piece of a quoted scalar, keeping each char's column."""
    chars: list[str] = []
    columns: list[int] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if double and char == "\\":
            if index + 1 >= len(raw):
                break  # escaped line break
            code = raw[index + 1]
            width = _HEX_ESCAPES.get(code)
            if width is not None:
                digits = raw[index + 2 : index + 2 + width]
                try:
                    chars.append(chr(int(digits, 16)))
                except (ValueError, OverflowError):
                    chars.append("\ufffd")
                columns.append(column + index)
                index += 2 + width
                continue
            chars.append(_ESCAPES.get(code, code))
            columns.append(column + index)
            index += 2
            continue
        if not double and char == "'" and raw[index + 1 : index + 2] == "'":
            chars.append("'")
            columns.append(column + index)
            index += 2
            continue
        chars.append(char)
        columns.append(column + index)
        index += 1
    return "".join(chars), columns


def _segments(lines: tuple[str, ...], mark: NodeMark, start: tuple[int, int]) -> list[_Segment]:
    """The scalar's text, split per physical line, with source columns."""
    first_line, first_column = start
    last_line = min(mark.end_line - 1, len(lines) - 1)
    end_column = mark.end_column - 1
    style = mark.style
    segments: list[_Segment] = []
    if style in ("|", ">"):
        if mark.end_column == 1:
            last_line -= 1  # the end mark is the start of the following line
        for number in range(first_line + 1, last_line + 1):
            raw = lines[number]
            text = raw.strip(" \t")
            if text:
                column = len(raw) - len(raw.lstrip(" \t"))
                segments.append((number, text, list(range(column, column + len(text)))))
        return segments
    quoted = style in ("'", '"')
    for number in range(first_line, last_line + 1):
        raw = lines[number]
        begin = (first_column + (1 if quoted else 0)) if number == first_line else 0
        finish = (end_column - (1 if quoted else 0)) if number == last_line else len(raw)
        piece = raw[begin:finish]
        if number != first_line:
            stripped = piece.lstrip(" \t")
            begin += len(piece) - len(stripped)
            piece = stripped
        if number != last_line:
            piece = piece.rstrip(" \t")
        if quoted:
            text, columns = _unquote(piece, begin, style == '"')
        else:
            text, columns = piece, list(range(begin, begin + len(piece)))
        if text:
            segments.append((number, text, columns))
    return segments


def _align(value: str, segments: list[_Segment], offset: int) -> tuple[int, int] | None:
    """Find where ``value[offset]`` is, by locating each segment in order."""
    cursor = 0
    before: tuple[int, int] | None = None
    for number, text, columns in segments:
        found = value.find(text, cursor)
        if found < 0:
            continue
        if found <= offset < found + len(text):
            return number, columns[offset - found]
        if found + len(text) <= offset:
            before = (number, columns[-1] + 1)
        elif before is None:
            return number, columns[0]
        else:
            return before
        cursor = found + len(text)
    return before
