"""The per-user CEL cache file: lark parse tables plus type-check results.

``planpolicy.cel`` keeps one file per installed checker under the cache
directory (``$PLANPOLICY_CACHE_DIR``, default ``~/.cache/planpolicy``; ``off``
disables it). It holds two sections:

* the CEL grammar's LALR parse tables, as serialized by lark (a pickle: it is
  only ever read from a directory and a file that belong to the current user
  and that nobody else may write), so a process that must parse does not
  rebuild them (~0.4 s);
* the result of type-checking expressions (JSON, validated on read), keyed by
  a digest of the expression text, the declared context type and whether a
  boolean is expected, so an unchanged expression is neither parsed nor
  checked again. The file name and header carry a fingerprint of the checker
  (this package's CEL modules, cel-python, lark and Python), so results made
  by another version are never used.

Reading never raises: a missing, foreign, truncated or corrupt file is a
cache miss. Writes go to a temporary file renamed into place, so readers see
the old file or the new one, never a partial one.

File layout::

    planpolicy-cel-cache 1\\n
    {"checks": <fingerprint>, "tables": <key>, "tables_size": N, "checks_size": M}\\n
    <N bytes: parse tables> <M bytes: JSON object, entry key -> result>
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, Final

try:  # hashlib would also load OpenSSL (~5 ms per process); only blake2b is needed
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import blake2b

from planpolicy.celtypes import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    UINT,
    CelType,
    ListType,
    MapType,
    ObjectType,
    PrimitiveType,
)

__all__ = [
    "CACHE_DIR_ENV",
    "MAX_ENTRIES",
    "CheckStore",
    "cache_dir",
    "cache_file",
    "digest",
    "entry_key",
    "type_code",
    "type_from_code",
]

CACHE_DIR_ENV: Final = "PLANPOLICY_CACHE_DIR"
"""Where the CEL cache file lives (``off`` disables the cache)."""

#: Bump when the meaning of a cached check result changes without a source change.
CHECKER_VERSION: Final = 1
#: Most results kept in one file (the oldest unused ones go first).
MAX_ENTRIES: Final = 20_000
#: Cache files of other checker versions older than this are removed when writing.
STALE_SECONDS: Final = 30 * 24 * 3600

_MAGIC: Final = b"planpolicy-cel-cache 1\n"
_MAX_HEADER: Final = 4096
_PREFIX: Final = "cel-"
_SUFFIX: Final = ".cache"


def cache_dir() -> Path | None:
    """The private per-user cache directory, created if needed; None when off or unsafe."""
    setting = os.environ.get(CACHE_DIR_ENV, "")
    if setting.lower() == "off":
        return None
    base = (
        Path(setting)
        if setting
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "planpolicy"
    )
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = base.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None  # never load pickled tables from a directory others can write
    except OSError:
        return None
    return base


def _stamp(path: str | None) -> list[Any]:
    if path is None:
        return [None]
    try:
        info = os.stat(path)
    except OSError:
        return [os.path.basename(path), None]
    return [os.path.basename(path), info.st_size, info.st_mtime_ns]


def _package_files(name: str, files: tuple[str, ...]) -> list[Any]:
    """Size and mtime of some files of an installed package, found without importing it."""
    from importlib.util import find_spec

    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return [name, None]
    folder = os.path.dirname(spec.origin)
    return [name, *(_stamp(os.path.join(folder, file)) for file in files)]


_FINGERPRINT: list[str] = []


def fingerprint() -> str:
    """Identifies the checker: a result cached under another fingerprint is never used."""
    if not _FINGERPRINT:
        here = os.path.dirname(os.path.abspath(__file__))
        parts = [
            CHECKER_VERSION,
            list(sys.version_info[:2]),
            [_stamp(os.path.join(here, name)) for name in ("cel.py", "celtypes.py", "celcache.py")],
            _package_files(
                "celpy", ("__init__.py", "cel.lark", "celparser.py", "celtypes.py", "evaluation.py")
            ),
            _package_files("lark", ("__init__.py", "lark.py", "lexer.py")),
        ]
        text = json.dumps(parts, separators=(",", ":"))
        _FINGERPRINT.append(blake2b(text.encode(), digest_size=16).hexdigest())
    return _FINGERPRINT[0]


def cache_file() -> Path | None:
    """The cache file for this checker, or None when the cache is off or unusable."""
    base = cache_dir()
    if base is None:
        return None
    return base / f"{_PREFIX}{fingerprint()}{_SUFFIX}"


def entry_key(context_digest: str, expect_bool: bool, source: str) -> str:
    """The key of one check result."""
    text = f"{context_digest}\0{int(expect_bool)}\0{source}"
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class _Parsed:
    """What was read from a cache file (sections kept as raw bytes until needed)."""

    __slots__ = ("checks", "identity", "tables", "tables_key")

    def __init__(self) -> None:
        self.checks: dict[str, Any] = {}
        self.tables: bytes | None = None
        self.tables_key: str | None = None
        self.identity: tuple[int, int, int] | None = None


def _read(path: Path, *, want_tables: bool) -> _Parsed:
    """Read the cache file; anything unexpected yields an empty result."""
    parsed = _Parsed()
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return parsed
    try:
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
                return parsed
            parsed.identity = (info.st_ino, info.st_size, info.st_mtime_ns)
            if handle.read(len(_MAGIC)) != _MAGIC:
                return parsed
            header = json.loads(handle.readline(_MAX_HEADER))
            if not isinstance(header, dict) or header.get("checks") != fingerprint():
                return parsed
            tables_size = header.get("tables_size")
            checks_size = header.get("checks_size")
            tables_key = header.get("tables")
            if not (
                isinstance(tables_size, int)
                and isinstance(checks_size, int)
                and tables_size >= 0
                and checks_size >= 0
                and (tables_key is None or isinstance(tables_key, str))
            ):
                return parsed
            if want_tables and tables_size and tables_key is not None:
                tables = handle.read(tables_size)
                if len(tables) == tables_size:
                    parsed.tables, parsed.tables_key = tables, tables_key
            else:
                handle.seek(tables_size, os.SEEK_CUR)
            body = handle.read(checks_size)
            if len(body) != checks_size:
                return parsed
            checks = json.loads(body) if checks_size else {}
            if isinstance(checks, dict):
                parsed.checks = checks
    except (OSError, ValueError, RecursionError):
        return _Parsed()
    return parsed


class CheckStore:
    """The cache file's contents for this process: read once, written by :meth:`flush`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded = False
        self._identity: tuple[int, int, int] | None = None
        self._checks: dict[str, Any] = {}
        self._used: set[str] = set()
        self._new: dict[str, Any] = {}
        self._tables: bytes | None = None
        self._tables_key: str | None = None
        self._tables_read = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            parsed = _read(self.path, want_tables=False)
            self._checks = parsed.checks
            self._identity = parsed.identity

    def get(self, key: str) -> Any:
        """The cached value for ``key``, or None."""
        self._load()
        value = self._new.get(key)
        if value is None:
            value = self._checks.get(key)
            if value is not None:
                self._used.add(key)
        return value

    def forget(self, key: str) -> None:
        """Drop a value that turned out to be unusable."""
        self._checks.pop(key, None)
        self._used.discard(key)

    def put(self, key: str, value: Any) -> None:
        """Remember a new result (written by the next :meth:`flush`)."""
        if len(self._new) < MAX_ENTRIES:
            self._new[key] = value

    def _read_tables(self) -> None:
        if not self._tables_read:
            self._tables_read = True
            parsed = _read(self.path, want_tables=True)
            self._tables, self._tables_key = parsed.tables, parsed.tables_key

    def tables(self, key: str) -> bytes | None:
        """The serialized parse tables, if the file holds them for ``key``."""
        self._read_tables()
        return self._tables if self._tables_key == key else None

    def set_tables(self, key: str, data: bytes) -> None:
        """Parse tables built by this process, to be written with the results."""
        self._tables_read = True
        self._tables, self._tables_key = data, key

    @property
    def dirty(self) -> bool:
        return bool(self._new)

    def flush(self) -> None:
        """Write new results (and the tables) if there are any; never raises."""
        if not self._new:
            return
        with contextlib.suppress(OSError, ValueError, TypeError, RecursionError):
            self._write()
        self._checks.update(self._new)
        self._used.update(self._new)
        self._new = {}

    def _merged(self) -> dict[str, Any]:
        checks = self._checks
        current = _read(self.path, want_tables=False)
        if current.identity is not None and current.identity != self._identity:
            checks = {**current.checks, **checks}  # another process wrote meanwhile
        old = {k: v for k, v in checks.items() if k not in self._used and k not in self._new}
        used = {k: checks[k] for k in self._used if k in checks and k not in self._new}
        merged = {**old, **used, **self._new}
        if len(merged) > MAX_ENTRIES:
            merged = dict(list(merged.items())[len(merged) - MAX_ENTRIES :])
        return merged

    def _write(self) -> None:
        self._read_tables()  # keep the tables that are already in the file
        checks = json.dumps(self._merged(), separators=(",", ":"), ensure_ascii=False).encode()
        tables = self._tables or b""
        header = {
            "checks": fingerprint(),
            "tables": self._tables_key if tables else None,
            "tables_size": len(tables),
            "checks_size": len(checks),
        }
        import tempfile

        folder = self.path.parent
        descriptor, temporary = tempfile.mkstemp(prefix=".cel-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(_MAGIC)
                handle.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
                handle.write(tables)
                handle.write(checks)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        info = os.stat(self.path)
        self._identity = (info.st_ino, info.st_size, info.st_mtime_ns)
        _remove_stale(folder, self.path.name)


def _remove_stale(folder: Path, keep: str) -> None:
    """Delete cache files of other checker versions that nobody used for a month."""
    cutoff = time.time() - STALE_SECONDS
    try:
        for entry in os.scandir(folder):
            name = entry.name
            if name == keep or not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
                continue
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
    except OSError:
        pass


def type_code(value: CelType) -> Any:
    """A checker type as JSON-compatible data (see :func:`type_from_code`)."""
    if isinstance(value, PrimitiveType):
        return value.label
    if isinstance(value, ListType):
        return ["list", type_code(value.elem)]
    if isinstance(value, MapType):
        return ["map", type_code(value.key), type_code(value.value)]
    if isinstance(value, ObjectType):
        fields = {name: type_code(item) for name, item in value.fields.items()}
        return ["object", value.open, fields]
    raise TypeError(f"not a checker type: {type(value).__name__}")


_PRIMITIVES: Final = {
    t.label: t for t in (BOOL, BYTES, DOUBLE, DURATION, DYN, INT, NULL, STRING, TIMESTAMP, UINT)
}


def type_from_code(code: Any) -> CelType:
    """The checker type :func:`type_code` encoded; ValueError for anything else."""
    if isinstance(code, str):
        found = _PRIMITIVES.get(code)
        if found is not None:
            return found
    elif isinstance(code, list) and code:
        tag = code[0]
        if tag == "list" and len(code) == 2:
            return ListType(type_from_code(code[1]))
        if tag == "map" and len(code) == 3:
            return MapType(type_from_code(code[1]), type_from_code(code[2]))
        if (
            tag == "object"
            and len(code) == 3
            and isinstance(code[1], bool)
            and isinstance(code[2], dict)
        ):
            fields = {str(name): type_from_code(item) for name, item in code[2].items()}
            return ObjectType(fields, open=code[1])
    raise ValueError("not a checker type")


def digest(value: Any) -> str:
    """A short stable digest of JSON-compatible data."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return blake2b(text.encode(), digest_size=16).hexdigest()
