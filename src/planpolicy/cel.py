"""Compile-once CEL with a type checker over the declared evaluation context.

With :mod:`planpolicy.celprogram`, this is the only module that imports
cel-python (``celpy``) and lark, and only when an expression has to be parsed
or evaluated. Policy
expressions are parsed once, when a bundle loads, by a :class:`CelEnvironment`;
because cel-python has no type checker, the parse tree is walked here and every
sub-expression is given a :class:`~planpolicy.celtypes.CelType` derived from the
context's JSON Schema. Problems come back as :class:`CelProblem` values (never
exceptions) with positions relative to the expression text.

Evaluation runs each checked expression as Python closures built once by
:mod:`planpolicy.celprogram`, which call cel-python's own operators on its value
types, so results match cel-python's interpreter (kept for the few constructs
the closures do not cover; cel-python's transpiling runner is not thread-safe).
Contexts are converted to CEL values once per plan with :func:`make_activation`
(or :func:`to_cel` per value) and shared by every rule. Evaluation errors are rebuilt
from the error's kind and the expression text only: cel-python's own messages
can embed the whole activation, which is customer data.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib
import importlib.util
import math
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from planpolicy import celcache, celsyntax
from planpolicy.celcache import CACHE_DIR_ENV

if TYPE_CHECKING:
    import celpy
    import celpy.celtypes as cv
    import lark
    from celpy.celparser import CELParser
    from celpy.evaluation import CELEvalError, celbytes, celstr
else:
    # cel-python and lark are imported on first use (see _load_celpy): a lint run
    # whose expressions are all in the check cache never needs them.

    class CELEvalError(Exception):
        """Stands in for cel-python's error class until cel-python is imported."""

    class _LazyModule:
        """Stands in for a cel-python module; the first attribute access imports it."""

        def __getattr__(self, name: str) -> Any:
            _load_celpy()
            return getattr(globals()["cv"], name)

    cv = _LazyModule()

from planpolicy.celtypes import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    FUNCTIONS,
    INT,
    MACROS,
    METHODS,
    NULL,
    STRING,
    TIMESTAMP,
    UINT,
    CelType,
    ListType,
    MapType,
    ObjectType,
    Signature,
    arithmetic_result,
    element_type,
    equality_problem,
    join,
    kind,
    membership_problem,
    mismatch_hint,
    ordering_problem,
    types_from_schema,
)

__all__ = [
    "BOOL",
    "BYTES",
    "CACHE_DIR_ENV",
    "CODES",
    "DOUBLE",
    "DURATION",
    "DYN",
    "INT",
    "NULL",
    "STRING",
    "TIMESTAMP",
    "UINT",
    "WARNING_CODES",
    "Activation",
    "CelEnvironment",
    "CelProblem",
    "CelType",
    "CompileResult",
    "CompiledExpr",
    "EvalResult",
    "ListType",
    "MapType",
    "ObjectType",
    "activation_of",
    "build_check_parser",
    "cel_key",
    "cel_map",
    "clear_compile_cache",
    "make_activation",
    "save_compile_cache",
    "to_cel",
    "types_from_schema",
]

CODES: Final[Mapping[str, str]] = {
    "PP401": "syntax error",
    "PP402": "unknown variable",
    "PP403": "unknown field",
    "PP404": "unknown function or wrong number of arguments",
    "PP405": "expression is not boolean",
    "PP406": "type mismatch",
    "PP407": "non-portable duration unit",
}
"""Every code :meth:`CelEnvironment.compile` can report, with a short title."""

WARNING_CODES: Final = frozenset({"PP407"})
"""Codes that are warnings: the expression still compiles."""


_MAX_DEPTH: Final = 400  # parse-tree depth; cel-python's interpreter recurses out near 550
_MAX_PROBLEMS: Final = 50
_CACHE_LIMIT: Final = 8192
_IDENT_RE: Final = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")
_DURATION_PART_RE: Final = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-z]+)")
_DURATION_RE: Final = re.compile(r"^[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+$")
_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_LIMIT: Final = 315_576_000_000  # seconds: CEL's +-10,000 years
_UTC: Final = dt.UTC
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True)
class CelProblem:
    """A problem found in one expression; ``line``/``column`` are 1-based within its text."""

    code: str
    message: str
    line: int
    column: int
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        """False for warnings (:data:`WARNING_CODES`), which do not stop compilation."""
        return self.code not in WARNING_CODES


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one evaluation: a plain Python value, or a sanitized error message."""

    value: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when evaluation succeeded."""
        return self.error is None


class Activation:
    """CEL values for one evaluation context, converted once and shared by many rules."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    @property
    def names(self) -> frozenset[str]:
        """The root variables this activation provides."""
        return frozenset(self._values)

    def __repr__(self) -> str:  # never show the values: they are customer data
        return f"Activation(names={sorted(self._values)})"


@dataclass(frozen=True)
class CompiledExpr:
    """A checked expression with its cel-python program, built once and reusable."""

    source: str
    result_type: CelType
    roots: frozenset[str]
    paths: frozenset[tuple[str, ...]]
    is_constant: bool
    _runner: Any = field(repr=False, compare=False)

    @property
    def compiled(self) -> bool:
        """True when evaluation runs compiled closures, not cel-python's tree interpreter."""
        return bool(self._runner.compiled)

    @property
    def tree(self) -> Any:
        """The lark parse tree (with positions), parsed on first use if it came from the cache."""
        return self._runner.tree

    def interpreted(self) -> CompiledExpr:
        """The same expression evaluated by cel-python's tree interpreter (the reference)."""
        return replace(self, _runner=_Program(self.source, self.tree, closures=False))

    def evaluate(self, activation: Activation) -> EvalResult:
        """Evaluate against ``activation``; CEL errors come back as ``EvalResult.error``."""
        try:
            value = self._runner.evaluate(activation._values)
            return EvalResult(_to_plain(value))
        except CELEvalError as err:
            return EvalResult(None, _describe_eval_error(err, self.source))
        except _NotAValue:
            return EvalResult(None, "the result is not a plain value")
        except Exception as exc:  # cel-python internals; their text may hold customer data
            return EvalResult(None, f"evaluation failed ({type(exc).__name__})")


@dataclass(frozen=True)
class CompileResult:
    """The compiled expression (None if any problem is an error) and all problems found."""

    expr: CompiledExpr | None
    problems: tuple[CelProblem, ...]

    @property
    def ok(self) -> bool:
        """True when an expression was produced (warnings may still be present)."""
        return self.expr is not None


# --- compile cache ---------------------------------------------------------------

_CacheKey = tuple[str, ObjectType, bool]
_CACHE: dict[_CacheKey, CompileResult] = {}
_CACHE_LOCK = threading.Lock()


_PARSER_LOCK = threading.Lock()
_BUILD_LOCK = threading.RLock()


def clear_compile_cache() -> None:
    """Forget every cached compilation of this process (for tests and benchmarks).

    The per-user check cache on disk is not touched (``PLANPOLICY_CACHE_DIR=off``
    disables it).
    """
    with _CACHE_LOCK:
        _CACHE.clear()


def _cache_put(key: _CacheKey, result: CompileResult) -> None:
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            for old in list(_CACHE)[: _CACHE_LIMIT // 4]:
                del _CACHE[old]
        _CACHE[key] = result


def _parser_cache_path() -> str | None:
    """The private per-user cache file (parse tables, check results), or None when unusable."""
    path = celcache.cache_file()
    return None if path is None else str(path)


# --- cel-python and the parsers, loaded on first use ---------------------------------


def _load_celpy() -> None:
    """Import cel-python and lark and bind their names in this module."""
    if "celpy" in globals():
        return
    import logging

    with _BUILD_LOCK:
        if "celpy" in globals():
            return
        # cel-python logs activations (customer data) at debug level; keep it quiet.
        logging.getLogger("celpy").setLevel(logging.WARNING)
        names: dict[str, Any] = {}
        names["cv"] = importlib.import_module("celpy.celtypes")
        evaluation = importlib.import_module("celpy.evaluation")
        names["CELEvalError"] = evaluation.CELEvalError
        names["celstr"] = evaluation.celstr
        names["celbytes"] = evaluation.celbytes
        names["CELParser"] = importlib.import_module("celpy.celparser").CELParser
        names["lark"] = importlib.import_module("lark")
        names["celpy"] = importlib.import_module("celpy")  # bound last: marks "loaded"
        globals().update(names)


#: Options of cel-python's own parser (``CELParser``), except those lark lets a
#: cached parser choose when it is loaded.
_LARK_OPTIONS: Final[Mapping[str, Any]] = {
    "parser": "lalr",
    "start": "expr",
    "maybe_placeholders": False,
    "priority": "invert",
}
_LOAD_OPTIONS: Final = frozenset(
    {
        "postlex",
        "transformer",
        "lexer_callbacks",
        "use_bytes",
        "debug",
        "g_regex_flags",
        "regex",
        "propagate_positions",
        "tree_class",
        "_plugins",
    }
)
_PARSERS: dict[bool, Any] = {}


_KEYWORD_LITERALS: Final[Mapping[str, str]] = {"true": "BOOL_LIT", "false": "BOOL_LIT"}


def _literal_keywords(token: Any) -> Any:
    """The grammar's one lexing rule beyond its terminals: `true`/`false` are literals.

    The same rule as cel-python's parser applies (as a lexer callback on
    identifiers), building the same tokens, so both parsers build equal trees.
    """
    kind = _KEYWORD_LITERALS.get(token.value)
    return token if kind is None else lark.Token(kind, token.value)


def _load_options(positions: bool) -> dict[str, Any]:
    keywords = CELParser.ambiguous_literals if positions else _literal_keywords
    return {
        "debug": True,
        "g_regex_flags": re.M,
        "lexer_callbacks": {"IDENT": keywords},
        "propagate_positions": positions,
        "tree_class": lark.Tree,
    }


def _load_lark() -> None:
    """Import lark (not cel-python) and bind it in this module."""
    if "lark" not in globals():
        globals()["lark"] = importlib.import_module("lark")


def _grammar() -> str:
    """cel-python's CEL grammar, read without importing cel-python."""
    spec = importlib.util.find_spec("celpy")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise ImportError("cel-python is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return (folder / "cel.lark").read_text(encoding="utf-8")


PACKAGED_TABLES: Final = Path(__file__).with_name("cel_parser.tables")
"""CEL parse tables shipped with the package (``planpolicy schema --write`` makes them).

The first line is the tables' key (grammar, lark version, options); the rest
is lark's serialized parser. They are used when the per-user cache has none,
as on a fresh CI runner, and ignored when the key differs (another lark), in
which case the tables are built as before.
"""


def _tables_key(version: str | None = None) -> str:
    version = lark.__version__ if version is None else version
    return celcache.digest([_grammar(), version, dict(_LARK_OPTIONS)])


_LARK_VERSION_RE: Final = re.compile(
    r"""^__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""", re.M
)


def _lark_version() -> str | None:
    """lark's version, read from its package without importing it (None if not found)."""
    if "lark" in globals():
        return str(lark.__version__)
    spec = importlib.util.find_spec("lark")
    if spec is None or spec.origin is None:
        return None
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    found = _LARK_VERSION_RE.search(source)
    return None if found is None else found.group(1)


def _syntax_key(version: str) -> str:
    return celcache.digest(
        [_tables_key(version), dict(_KEYWORD_LITERALS), celsyntax.FORMAT, "celsyntax"]
    )


_SYNTAX: list[celsyntax.SyntaxTables | None] = []


def _syntax_tables() -> celsyntax.SyntaxTables | None:
    """The lark-free parser for checking (:mod:`planpolicy.celsyntax`), or None.

    None when the shipped tables were exported for another grammar or lark
    version; expressions are then parsed with lark.
    """
    if not _SYNTAX:
        with _PARSER_LOCK:
            if not _SYNTAX:
                version = _lark_version()
                tables = None
                if version is not None:
                    tables = celsyntax.load(_syntax_key(version), _KEYWORD_LITERALS)
                _SYNTAX.append(tables)
    return _SYNTAX[0]


def syntax_tables_text() -> str:
    """The text of the lark-free parser's tables (``cel_syntax.json``) for this grammar and lark."""
    _load_lark()
    data = celsyntax.export(_lark_parser(False), _syntax_key(str(lark.__version__)))
    return celsyntax.text(data)


def _parse_for_check(source: str) -> Any:
    """``source``'s tree without positions: lark-free when possible, else lark's.

    Raises lark's syntax errors for invalid text.
    """
    tables = _syntax_tables()
    if tables is not None:
        try:
            return tables.parse(source)
        except Exception:  # not valid (NotParsed), or anything unforeseen: lark decides
            pass  # and says what is wrong
    return _lark_parser(False).parse(source)


def _packaged_tables(key: str) -> bytes | None:
    try:
        data = PACKAGED_TABLES.read_bytes()
    except OSError:
        return None
    head, newline, body = data.partition(b"\n")
    return body if newline and head == key.encode("ascii") else None


def write_packaged_tables(path: Path | None = None) -> bool:
    """Build the CEL parse tables into ``path`` unless it holds current ones; True if written.

    ``path`` defaults to :data:`PACKAGED_TABLES`. Only the key is compared:
    lark's serialization is not byte-for-byte stable.
    """
    import io

    path = PACKAGED_TABLES if path is None else path
    _load_lark()
    key = _tables_key()
    try:
        if path.read_bytes().partition(b"\n")[0] == key.encode("ascii"):
            return False
    except OSError:
        pass
    parser = lark.Lark(_grammar(), **_LARK_OPTIONS, **_load_options(False))
    buffer = io.BytesIO()
    parser.save(buffer, _LOAD_OPTIONS)
    path.write_bytes(key.encode("ascii") + b"\n" + buffer.getvalue())
    return True


def _build_parser(positions: bool) -> Any:
    """A lark parser for CEL, from cached or shipped parse tables when possible.

    With ``positions`` it is cel-python's own parser; without, the trees carry
    no position metadata (tokens still do), which makes parsing ~3x faster:
    the checker only needs positions to report a problem. The parser without
    positions needs lark only, so checking expressions does not import
    cel-python's evaluator.
    """
    import io
    import pickle

    key = _tables_key()
    store = _store()
    data = store.tables(key) if store is not None else None
    for tables in (data, _packaged_tables(key) if data is None else None):
        if tables is None:
            continue
        try:
            loaded = lark.Lark.__new__(lark.Lark)
            parser = loaded._load(io.BytesIO(tables), **_load_options(positions))
        except Exception:  # tables from another lark: try the next, or build them
            continue
        if store is not None and tables is not data:
            store.set_tables(key, tables)
        return parser
    parser = lark.Lark(_grammar(), **_LARK_OPTIONS, **_load_options(positions))
    if store is not None:
        buffer = io.BytesIO()
        try:
            parser.save(buffer, _LOAD_OPTIONS)
        except (pickle.PicklingError, TypeError, AttributeError):
            return parser
        store.set_tables(key, buffer.getvalue())
    return parser


def _lark_parser(positions: bool) -> Any:
    """The shared CEL parser with (cel-python's) or without position metadata."""
    parser = _PARSERS.get(positions)
    if parser is None:
        if positions:
            _load_celpy()
        else:
            _load_lark()
        with _PARSER_LOCK:
            parser = _PARSERS.get(positions)
            if parser is None:
                if positions and CELParser.CEL_PARSER is not None:
                    parser = CELParser.CEL_PARSER
                else:
                    parser = _build_parser(positions)
                _PARSERS[positions] = parser
    return parser


def build_check_parser() -> None:
    """Build (or load the tables of) the parser that checks new expressions, now.

    For a process about to fork workers that will parse: they inherit it.
    """
    if _syntax_tables() is None:
        _lark_parser(False)


def _prime_parser() -> None:
    """Give cel-python's shared parser (``CELParser.CEL_PARSER``) the cached tables.

    cel-python builds its LALR tables on first use (~0.4 s); loading them from
    the cache file is much faster. The parser has the exact options cel-python
    uses, so parsing is unchanged.
    """
    _load_celpy()
    if CELParser.CEL_PARSER is None:
        CELParser.CEL_PARSER = _lark_parser(True)


_ENVIRONMENT: list[Any] = []
_RECURSION_LIMIT: Final = 2500  # what celpy.Environment sets


def _environment() -> Any:
    """The shared ``celpy.Environment`` (compiles with positions, builds programs)."""
    if not _ENVIRONMENT:
        with _BUILD_LOCK:
            if not _ENVIRONMENT:
                _prime_parser()
                _ENVIRONMENT.append(celpy.Environment())
    return _ENVIRONMENT[0]


class _Program:
    """One expression's parse tree and its evaluator, built on first use.

    A result from the check cache has no tree: ``planpolicy lint`` never
    evaluates most expressions, so they are only parsed if something does.
    Evaluation runs the tree compiled into closures (:mod:`planpolicy.celprogram`);
    an expression the closures do not cover, or a program built with
    ``closures=False``, runs in cel-python's tree interpreter.
    """

    __slots__ = ("_closures", "_runner", "_source", "_tree", "_use_closures")

    def __init__(self, source: str, tree: Any = None, *, closures: bool = True) -> None:
        self._source = source
        self._tree = tree
        self._runner: Any = None
        self._use_closures = closures
        self._closures: Any = None  # None: not built yet; False: the interpreter is used

    @property
    def tree(self) -> Any:
        """cel-python's parse tree (with position metadata)."""
        tree = self._tree
        if tree is None:
            with _BUILD_LOCK:
                if self._tree is None:
                    self._tree = _environment().compile(self._source)
                tree = self._tree
        return tree

    @property
    def compiled(self) -> bool:
        return self._program() is not False

    def _program(self) -> Any:
        closures = self._closures
        if closures is None:
            with _BUILD_LOCK:
                if self._closures is None:
                    self._closures = _closures(self.tree) if self._use_closures else False
                closures = self._closures
        return closures

    def evaluate(self, values: Any) -> Any:
        closures = self._closures
        if closures is None:
            closures = self._program()
        if closures is not False:
            value = closures(values)
            if isinstance(value, CELEvalError):
                raise value
            return value
        runner = self._runner
        if runner is None:
            with _BUILD_LOCK:
                if self._runner is None:
                    self._runner = _environment().program(self.tree)
                runner = self._runner
        return runner.evaluate(values)


def _closures(tree: Any) -> Any:
    """The expression as compiled closures, or False to keep cel-python's interpreter."""
    from planpolicy.celprogram import Unsupported, compile_program

    try:
        return compile_program(tree)
    except (Unsupported, RecursionError):
        return False


# --- the check cache on disk -----------------------------------------------------

_STORES: dict[str, celcache.CheckStore] = {}
_DIGESTS: dict[ObjectType, str] = {}

#: Results that depend on more than the text and the context: never cached.
_UNCACHED: Final = frozenset(
    {
        "the expression could not be checked",
        "invalid expression syntax",
        "expression is nested too deeply",
    }
)


def _store() -> celcache.CheckStore | None:
    path = celcache.cache_file()
    if path is None:
        return None
    name = str(path)
    store = _STORES.get(name)
    if store is None:
        store = _STORES.setdefault(name, celcache.CheckStore(path))
    return store


def save_compile_cache() -> None:
    """Write new check results (and parse tables) to the per-user cache file.

    Called once a bundle has compiled; never raises.
    """
    with _CACHE_LOCK:
        stores = list(_STORES.values())
    for store in stores:
        store.flush()


def _context_digest(context: ObjectType) -> str:
    found = _DIGESTS.get(context)
    if found is None:
        found = celcache.digest(celcache.type_code(context))
        _DIGESTS[context] = found
    return found


def _encode(result: CompileResult) -> Any:
    problems = [[p.code, p.message, p.line, p.column, p.hint] for p in result.problems]
    expr = result.expr
    if expr is None:
        return [problems, None]
    return [
        problems,
        [
            celcache.type_code(expr.result_type),
            sorted(expr.roots),
            sorted(list(path) for path in expr.paths),
            expr.is_constant,
        ],
    ]


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _decode(value: Any, source: str) -> CompileResult:
    """A cached result; ValueError if ``value`` is not one :func:`_encode` made."""
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], list)):
        raise ValueError("not a check result")
    problems = []
    for item in value[0]:
        if not (isinstance(item, list) and len(item) == 5):
            raise ValueError("not a problem")
        code, message, line, column, hint = item
        if (
            code not in CODES
            or not isinstance(message, str)
            or type(line) is not int
            or type(column) is not int
            or not (hint is None or isinstance(hint, str))
        ):
            raise ValueError("not a problem")
        problems.append(CelProblem(code, message, line, column, hint))
    expr = None
    if value[1] is not None:
        compiled = value[1]
        if not (isinstance(compiled, list) and len(compiled) == 4):
            raise ValueError("not an expression")
        type_code, roots, paths, is_constant = compiled
        if not (
            _is_str_list(roots)
            and isinstance(paths, list)
            and all(_is_str_list(path) for path in paths)
            and isinstance(is_constant, bool)
        ):
            raise ValueError("not an expression")
        expr = CompiledExpr(
            source=source,
            result_type=celcache.type_from_code(type_code),
            roots=frozenset(roots),
            paths=frozenset(tuple(path) for path in paths),
            is_constant=is_constant,
            _runner=_Program(source),
        )
    elif not any(p.is_error for p in problems):
        raise ValueError("no expression and no error")
    return CompileResult(expr, tuple(problems))


class CelEnvironment:
    """Compiles and type-checks expressions against one declared context (one per bundle)."""

    def __init__(self, context: ObjectType) -> None:
        self.context = context
        self._store: celcache.CheckStore | bool | None = False  # False: not looked up yet

    def compile(self, source: str, *, expect_bool: bool = True) -> CompileResult:
        """Parse, check and build ``source``; never raises for bad input.

        Identical expressions over the same context type are compiled once per
        process, and their check results are kept in the per-user cache file
        across processes (parsing for evaluation then waits for the first
        evaluation). With ``expect_bool`` the result must be ``bool`` (or ``dyn``).
        """
        if not isinstance(source, str):
            kind_name = type(source).__name__
            problem = CelProblem("PP401", f"expression must be text, got `{kind_name}`", 1, 1)
            return CompileResult(None, (problem,))
        key = (source, self.context, expect_bool)
        cached = _CACHE.get(key)
        if cached is None:
            cached = self._compile_with_store(source, expect_bool)
            _cache_put(key, cached)
        return cached

    def uncached(self, items: Iterable[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """The distinct ``(source, expect_bool)`` of ``items`` no cache holds a result for."""
        store = self._store
        if store is False:
            store = self._store = _store()
        digest = _context_digest(self.context) if isinstance(store, celcache.CheckStore) else ""
        out = []
        for source, expect_bool in dict.fromkeys(items):
            if not isinstance(source, str) or (source, self.context, expect_bool) in _CACHE:
                continue
            if (
                isinstance(store, celcache.CheckStore)
                and store.get(celcache.entry_key(digest, expect_bool, source)) is not None
            ):
                continue
            out.append((source, expect_bool))
        return out

    def compile_encoded(self, source: str, expect_bool: bool) -> Any:
        """Compile ``source`` without any cache: the result as the check cache holds it.

        ``None`` for a result that is never cached (see :meth:`adopt`).
        """
        result = self._compile(source, expect_bool)
        if any(p.message in _UNCACHED for p in result.problems):
            return None
        return _encode(result)

    def adopt(self, source: str, expect_bool: bool, value: Any) -> bool:
        """Take a result :meth:`compile_encoded` made elsewhere, as a cached one.

        Later :meth:`compile` calls return it as if it had been read from the
        check cache (which it joins). False, and nothing kept, if ``value`` is
        not such a result.
        """
        try:
            result = _decode(value, source)
        except (ValueError, TypeError, RecursionError):
            return False
        _cache_put((source, self.context, expect_bool), result)
        store = self._store
        if isinstance(store, celcache.CheckStore):
            store.put(celcache.entry_key(_context_digest(self.context), expect_bool, source), value)
        return True

    def _compile_with_store(self, source: str, expect_bool: bool) -> CompileResult:
        store = self._store
        if store is False:
            store = self._store = _store()
        if not isinstance(store, celcache.CheckStore):
            return self._compile(source, expect_bool)
        entry = celcache.entry_key(_context_digest(self.context), expect_bool, source)
        value = store.get(entry)
        if value is not None:
            try:
                return _decode(value, source)
            except (ValueError, TypeError, RecursionError):
                store.forget(entry)
        result = self._compile(source, expect_bool)
        if not any(p.message in _UNCACHED for p in result.problems):
            store.put(entry, _encode(result))
        return result

    def _compile(self, source: str, expect_bool: bool) -> CompileResult:
        if not source.strip():
            return CompileResult(None, (CelProblem("PP401", "expression is empty", 1, 1),))
        # as cel-python's Environment does: deep expressions parse and check
        sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))
        try:
            tree = _parse_for_check(source)
        except Exception as exc:  # lark's syntax errors, or its internals on pathological input
            from lark.exceptions import UnexpectedCharacters, UnexpectedToken

            if isinstance(exc, UnexpectedToken | UnexpectedCharacters):
                return CompileResult(None, (_syntax_problem(exc, source),))
            problem = CelProblem("PP401", "invalid expression syntax", 1, 1)
            return CompileResult(None, (problem,))
        checked = self._check(tree, source, expect_bool)
        if isinstance(checked, CompileResult):
            return checked
        positional = None
        if checked[1].problems:
            # Problems need positions: check the tree cel-python builds, with them.
            try:
                positional = _lark_parser(True).parse(source)
            except Exception:  # pragma: no cover - it parsed a moment ago
                problem = CelProblem("PP401", "invalid expression syntax", 1, 1)
                return CompileResult(None, (problem,))
            checked = self._check(positional, source, expect_bool)
            if isinstance(checked, CompileResult):
                return checked
        result_type, checker = checked
        problems = checker.sorted_problems()
        if any(p.is_error for p in problems):
            return CompileResult(None, problems)
        expr = CompiledExpr(
            source=source,
            result_type=result_type,
            roots=frozenset(checker.roots),
            paths=frozenset(checker.paths),
            is_constant=not checker.roots,
            _runner=_Program(source, positional),
        )
        return CompileResult(expr, problems)

    def _check(
        self, tree: Any, source: str, expect_bool: bool
    ) -> tuple[CelType, _Checker] | CompileResult:
        checker = _Checker(self.context, source)
        try:
            result_type = checker.check(tree, expect_bool)
        except (_TooDeep, RecursionError):
            hint = "split it into several simpler conditions"
            problem = CelProblem("PP401", "expression is nested too deeply", 1, 1, hint)
            return CompileResult(None, (problem,))
        except Exception:  # a checker bug must not take the whole bundle load down
            problem = CelProblem("PP401", "the expression could not be checked", 1, 1)
            return CompileResult(None, (problem,))
        return result_type, checker


# --- syntax errors ---------------------------------------------------------------

_CLOSERS: Final = {
    "RPAR": "`)`",
    "RSQB": "`]`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "IDENT": "a name",
}


def _clip(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _expected_hint(expected: Iterable[str]) -> str | None:
    names = set(expected)
    shown = sorted(_CLOSERS[n] for n in names if n in _CLOSERS)
    if not shown or len(names) > 4:
        return None
    if len(shown) == 1:
        return f"expected {shown[0]}"
    return f"expected {', '.join(shown[:-1])} or {shown[-1]}"


def _end_position(source: str) -> tuple[int, int]:
    lines = source.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


def _syntax_problem(cause: Exception, source: str) -> CelProblem:
    """The problem for lark's parse error ``cause`` (as cel-python reports it)."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    line = getattr(cause, "line", None) or 1
    column = getattr(cause, "column", None) or 1
    if isinstance(cause, UnexpectedToken):
        token = cause.token
        hint = _expected_hint(cause.expected or ())
        if token.type == "$END":
            end_line, end_column = _end_position(source)
            return CelProblem("PP401", "unexpected end of expression", end_line, end_column, hint)
        where = (token.line or line, token.column or column)
        return CelProblem("PP401", f"unexpected `{_clip(str(token))}`", *where, hint)
    if isinstance(cause, UnexpectedCharacters):
        if cause.char in "\"'":
            message = "unterminated string literal"
        else:
            message = f"unexpected character `{cause.char}`"
        return CelProblem("PP401", message, cause.line or line, cause.column or column)
    return CelProblem("PP401", "invalid expression syntax", line, column)


# --- the type checker ------------------------------------------------------------


class _T(NamedTuple):
    """A sub-expression's type and, when it is a context path, that path."""

    type: CelType
    path: tuple[str, ...] | None = None


class _TooDeep(Exception):
    pass


_CONDITION_MACROS: Final = frozenset({"all", "exists", "exists_one", "filter"})
_ALL_NAMES: Final = sorted({*METHODS, *FUNCTIONS, *MACROS, "has"})
_TYPE_NAMES: Final = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_CHAIN: Final = frozenset(
    {
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
        "member",
        "primary",
        "paren_expr",
    }
)
_REL_OPS: Final = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
}
_ARITH_OPS: Final = {
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}
_BOOLISH: Final = frozenset({BOOL, DYN})
_MAP_KEY_KINDS: Final = frozenset({"string", "int", "uint", "bool", "dyn"})


def _rule(node: Any) -> str:
    """A tree's rule name as a plain ``str`` (lark's ``Token.__eq__`` is slow)."""
    data = node.data
    return getattr(data, "value", data)  # type: ignore[no-any-return]


def _unwrap(node: Any) -> Any:
    while _rule(node) in _CHAIN and len(node.children) == 1:
        node = node.children[0]
    return node


def _string_value(token: Any) -> str | None:
    """The value of a string literal token, or None if its escapes are invalid."""
    text: str = token.value
    if "\\" in text:
        try:
            return str(celstr(token))
        except Exception:
            return None
    if text[:1] in ("r", "R"):
        text = text[1:]
    quotes = 3 if text[:3] in ('"""', "'''") else 1
    return text[quotes:-quotes]


def duration_literal_seconds(text: str) -> float:
    """The seconds of a CEL duration literal, e.g. ``"1.5h"``; ``ValueError`` when invalid.

    Accepts exactly what cel-python's ``DurationType`` accepts (a differential
    test holds them together), without importing cel-python's types (and the
    date libraries they load) just to check a literal.
    """
    if not _DURATION_RE.match(text):
        raise ValueError(f"invalid duration {text!r}")
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in ("+", "-") else text
    try:
        parts = [
            float(number) * _DURATION_UNITS[unit]
            for number, unit in _DURATION_PART_RE.findall(body)
        ]
    except KeyError:
        raise ValueError(f"invalid duration {text!r}") from None
    seconds = sign * math.fsum(parts)
    if not -_DURATION_LIMIT <= seconds <= _DURATION_LIMIT:
        raise ValueError(f"duration out of range: {text!r}")
    return dt.timedelta(seconds=seconds).total_seconds()  # whole microseconds, as a value


def int_literal_value(text: str, *, unsigned: bool = False) -> int:
    """The value of a CEL integer literal (``u`` suffix removed); ``ValueError`` out of range.

    Reads decimal and ``0x`` literals as cel-python's ``IntType``/``UintType``
    do (a differential test holds them together), without importing them.
    """
    negative = text.startswith("-")
    body = text[1:] if negative else text
    if body[:2] in ("0x", "0X") and not (unsigned and negative):
        value = int(body[2:], 16)
    else:
        value = int(body)  # raises for "0x..." after a sign where cel-python does too
    value = -value if negative else value
    low, high = (0, 2**64) if unsigned else (_INT64_MIN, _INT64_MAX + 1)
    if not low <= value < high:
        raise ValueError(f"integer literal out of range: {text}")
    return value


def _string_literal(node: Any) -> str | None:
    node = _unwrap(node)
    if _rule(node) != "literal" or node.children[0].type not in ("STRING_LIT", "MLSTRING_LIT"):
        return None
    return _string_value(node.children[0])


# cel-python re-creates `true`/`false` tokens without positions; find them in the text.
_WORDS_RE: Final = re.compile(
    r"//[^\n]*"  # comments
    r"""|[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
    r"|[_a-zA-Z][_a-zA-Z0-9]*"  # identifiers and keywords
)


def _bool_positions(source: str) -> list[tuple[int, int]]:
    found = []
    for match in _WORDS_RE.finditer(source):
        if match.group() in ("true", "false"):
            start = match.start()
            line_start = source.rfind("\n", 0, start) + 1
            found.append((source.count("\n", 0, start) + 1, start - line_start + 1))
    return found


def _tokens_in_order(tree: Any) -> list[Any]:
    tokens = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if hasattr(node, "children"):
            stack.extend(reversed(node.children))
        else:
            tokens.append(node)
    return tokens


def _did_you_mean(name: str, candidates: Iterable[str], what: str) -> str | None:
    options = sorted(set(candidates))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    if options and len(options) <= 12:
        return f"{what}: " + ", ".join(f"`{o}`" for o in options)
    return None


class _Checker:
    """Walks one parse tree; collects problems, root variables and field paths."""

    def __init__(self, context: ObjectType, source: str) -> None:
        self.context = context
        self.source = source
        self.problems: list[CelProblem] = []
        self.roots: set[str] = set()
        self.paths: set[tuple[str, ...]] = set()
        self.scopes: list[tuple[str, _T]] = []
        self.depth = 0
        self.tree: Any = None
        self.bools: list[Any] | None = None

    def check(self, tree: Any, expect_bool: bool) -> CelType:
        self.tree = tree
        result = self.value(tree)
        if expect_bool and result not in _BOOLISH:
            self.report(
                "PP405",
                f"expression must be `bool`, got `{result}`",
                self.start(tree),
                "a condition must evaluate to true or false",
            )
        return result

    def sorted_problems(self) -> tuple[CelProblem, ...]:
        unique = dict.fromkeys(self.problems)
        return tuple(sorted(unique, key=lambda p: (p.line, p.column, p.code)))[:_MAX_PROBLEMS]

    def report(
        self, code: str, message: str, where: tuple[int, int], hint: str | None = None
    ) -> None:
        self.problems.append(CelProblem(code, message, where[0], where[1], hint))

    def start(self, node: Any) -> tuple[int, int]:
        """Where ``node`` begins (1-based line and column in the expression text)."""
        meta = node.meta
        line = getattr(meta, "line", None)
        if line is not None:
            return (line, meta.column)
        first = node
        while hasattr(first, "children") and first.children:
            first = first.children[0]
        if getattr(first, "type", None) == "BOOL_LIT":
            if self.bools is None:
                self.bools = [
                    t for t in _tokens_in_order(self.tree) if getattr(t, "type", "") == "BOOL_LIT"
                ]
            positions = _bool_positions(self.source)
            for index, token in enumerate(self.bools):
                if token is first and index < len(positions):
                    return positions[index]
        return (1, 1)

    def snippet(self, node: Any) -> str:
        meta = node.meta
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        if start is None or end is None:
            return "expression"
        return _clip(self.source[start:end])

    # dispatch

    def visit(self, node: Any, extra: int = 0) -> _T:
        steps = 1 + extra
        rule = _rule(node)
        while rule in _CHAIN and len(node.children) == 1:
            node = node.children[0]
            rule = _rule(node)
            steps += 1
        self.depth += steps
        try:
            if self.depth > _MAX_DEPTH:
                raise _TooDeep
            handler = _HANDLERS.get(rule)
            return handler(self, node) if handler is not None else _T(DYN)
        finally:
            self.depth -= steps

    def value(self, node: Any, extra: int = 0) -> CelType:
        """Visit ``node`` as a used value: its context path, if any, is recorded."""
        typed = self.visit(node, extra)
        if typed.path is not None:
            self.paths.add(typed.path)
        return typed.type

    # operators

    def ternary(self, node: Any) -> _T:
        cond, then, other = node.children
        cond_type = self.value(cond)
        if cond_type not in _BOOLISH:
            message = f"the condition of `? :` must be `bool`, got `{cond_type}`"
            self.report("PP406", message, self.start(cond))
        return _T(join(self.value(then), self.value(other)))

    def logic(self, node: Any) -> _T:
        op = "||" if _rule(node) == "conditionalor" else "&&"
        for operand in node.children:
            operand_type = self.value(operand)
            if operand_type not in _BOOLISH:
                message = f"`{op}` needs `bool` operands, got `{operand_type}`"
                self.report("PP406", message, self.start(operand))
        return _T(BOOL)

    def _op_position(self, op_node: Any, op: str) -> tuple[int, int]:
        meta = op_node.meta
        line = getattr(meta, "end_line", None)
        column = getattr(meta, "end_column", None)
        if line is None or column is None:
            return self.start(op_node)
        return (line, max(1, column - len(op)))

    def relation(self, node: Any) -> _T:
        op_node, right = node.children
        op = _REL_OPS[_rule(op_node)]
        left_type = self.value(op_node.children[0], 1)
        right_type = self.value(right)
        if op in ("==", "!="):
            problem = equality_problem(left_type, right_type, negated=op == "!=")
            other = right_type
        elif op == "in":
            problem = membership_problem(left_type, right_type)
            other = element_type(right_type) or right_type
        else:
            problem = ordering_problem(left_type, right_type)
            other = right_type
        if problem is not None:
            hint = mismatch_hint(left_type, other)
            self.report("PP406", problem, self._op_position(op_node, op), hint)
        return _T(BOOL)

    def arithmetic(self, node: Any) -> _T:
        op_node, right = node.children
        op = _ARITH_OPS[_rule(op_node)]
        left_type = self.value(op_node.children[0], 1)
        right_type = self.value(right)
        result = arithmetic_result(op, left_type, right_type)
        if result is None:
            message = f"operator `{op}` cannot be applied to `{left_type}` and `{right_type}`"
            hint = mismatch_hint(left_type, right_type)
            self.report("PP406", message, self._op_position(op_node, op), hint)
            return _T(DYN)
        return _T(result)

    def unary(self, node: Any) -> _T:
        op_node, operand = node.children
        operand_type = self.value(operand)
        if _rule(op_node) == "unary_not":
            if operand_type not in _BOOLISH:
                message = f"operator `!` needs `bool`, got `{operand_type}`"
                self.report("PP406", message, self.start(op_node))
            return _T(BOOL)
        if operand_type in (INT, DOUBLE, DYN):
            return _T(operand_type)
        self.report(
            "PP406", f"operator `-` cannot be applied to `{operand_type}`", self.start(op_node)
        )
        return _T(DYN)

    # names and members

    def lookup(self, token: Any, *, scoped: bool = True) -> _T:
        name = str(token)
        if scoped:
            for bound, typed in reversed(self.scopes):
                if bound == name:
                    return typed
        declared = self.context.fields.get(name)
        if declared is not None:
            self.roots.add(name)
            return _T(declared, (name,))
        if name in _TYPE_NAMES:
            return _T(DYN)
        if self.context.open:
            self.roots.add(name)
            return _T(DYN, (name,))
        known = [*self.context.fields, *(bound for bound, _ in self.scopes)]
        hint = _did_you_mean(name, known, "declared variables")
        self.report("PP402", f"unknown variable `{name}`", (token.line, token.column), hint)
        return _T(DYN)

    def ident(self, node: Any) -> _T:
        return self.lookup(node.children[0])

    def dot_ident(self, node: Any) -> _T:
        return self.lookup(node.children[0], scoped=False)

    def member_dot(self, node: Any) -> _T:
        member, token = node.children
        base = self.visit(member)
        name = str(token)
        where = (token.line, token.column)
        path = (*base.path, name) if base.path is not None else None
        base_type = base.type
        if isinstance(base_type, ObjectType):
            found = base_type.field_type(name)
            if found is None:
                hint = _did_you_mean(name, base_type.fields, "known fields")
                message = f"unknown field `{name}` on `{self.snippet(member)}`"
                self.report("PP403", message, where, hint)
                return _T(DYN)
            return _T(found, path)
        if isinstance(base_type, MapType):
            if base_type.key not in (STRING, DYN):
                message = f"cannot select field `{name}` from `{base_type}`"
                self.report("PP406", message, where)
            return _T(base_type.value, path)
        if base_type == DYN:
            return _T(DYN, path)
        message = (
            f"cannot select field `{name}` from `{self.snippet(member)}` of type `{base_type}`"
        )
        self.report("PP406", message, where)
        return _T(DYN)

    def member_index(self, node: Any) -> _T:
        member, index = node.children
        base = self.visit(member)
        index_type = self.value(index)
        key = _string_literal(index)
        path = None if base.path is None else (*base.path, key if key is not None else "*")
        base_type = base.type
        where = self.start(index)
        if isinstance(base_type, ListType):
            if index_type not in (INT, UINT, DYN):
                self.report("PP406", f"a list index must be `int`, got `{index_type}`", where)
            return _T(base_type.elem, path)
        if isinstance(base_type, MapType):
            if equality_problem(index_type, base_type.key) is not None:
                message = (
                    f"keys of `{self.snippet(member)}` are `{base_type.key}`, got `{index_type}`"
                )
                self.report("PP406", message, where)
            return _T(base_type.value, path)
        if isinstance(base_type, ObjectType):
            if index_type not in (STRING, DYN):
                message = f"keys of `{self.snippet(member)}` are `string`, got `{index_type}`"
                self.report("PP406", message, where)
                return _T(DYN)
            if key is None:
                return _T(DYN, path)
            found = base_type.field_type(key)
            if found is None:
                hint = _did_you_mean(key, base_type.fields, "known fields")
                message = f"unknown field `{key}` on `{self.snippet(member)}`"
                self.report("PP403", message, where, hint)
                return _T(DYN)
            return _T(found, path)
        if base_type == DYN:
            return _T(DYN, path)
        message = f"values of type `{base_type}` cannot be indexed"
        self.report("PP406", message, where)
        return _T(DYN)

    def member_object(self, node: Any) -> _T:
        message = f"message construction `{self.snippet(node)}` is not supported"
        self.report("PP404", message, self.start(node))
        return _T(DYN)

    # literals

    def literal(self, node: Any) -> _T:
        token = node.children[0]
        kind_name = token.type
        where = (token.line, token.column)
        if kind_name in ("INT_LIT", "UINT_LIT"):
            try:
                if kind_name == "INT_LIT":
                    int_literal_value(token.value)
                else:
                    int_literal_value(token.value[:-1], unsigned=True)
            except ValueError:
                self.report("PP401", f"number `{_clip(token.value)}` is out of range", where)
            return _T(INT if kind_name == "INT_LIT" else UINT)
        if kind_name in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
            try:
                if "\\" in token.value:  # only escapes can make a string literal invalid
                    (celstr if kind_name != "BYTES_LIT" else celbytes)(token)
            except Exception:
                self.report("PP401", "invalid escape sequence in a string literal", where)
            return _T(STRING if kind_name != "BYTES_LIT" else BYTES)
        simple = {"FLOAT_LIT": DOUBLE, "BOOL_LIT": BOOL, "NULL_LIT": NULL}
        return _T(simple.get(kind_name, DYN))

    def list_lit(self, node: Any) -> _T:
        elem: CelType | None = None
        for item in node.children[0].children if node.children else ():
            item_type = self.value(item)
            elem = item_type if elem is None else join(elem, item_type)
        return _T(ListType(elem if elem is not None else DYN))

    def map_lit(self, node: Any) -> _T:
        items = node.children[0].children if node.children else []
        key: CelType | None = None
        value: CelType | None = None
        for key_node, value_node in zip(items[0::2], items[1::2], strict=True):
            key_type = self.value(key_node)
            if kind(key_type) not in _MAP_KEY_KINDS:
                message = f"map keys must be `string`, `int`, `uint` or `bool`, got `{key_type}`"
                self.report("PP406", message, self.start(key_node))
            value_type = self.value(value_node)
            key = key_type if key is None else join(key, key_type)
            value = value_type if value is None else join(value, value_type)
        return _T(MapType(key or DYN, value or DYN))

    # calls

    def _args(self, node: Any, index: int) -> list[Any]:
        if len(node.children) > index:
            return list(node.children[index].children)
        return []

    def call(
        self, token: Any, sig: Signature, receiver: CelType | None, args: list[Any]
    ) -> CelType:
        name = str(token)
        where = (token.line, token.column)
        arg_types = [self.value(arg) for arg in args]
        low, high = sig.arity
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} or {high}"
            noun = "argument" if wanted == "1" else "arguments"
            self.report("PP404", f"`{name}` takes {wanted} {noun}, got {len(args)}", where)
            return sig.result
        if receiver is not None and receiver != DYN and kind(receiver) not in sig.receiver:
            self.report("PP406", f"`{name}` is not defined on `{receiver}`", where)
        for arg, arg_type, allowed in zip(args, arg_types, sig.params, strict=False):
            if allowed is not None and arg_type != DYN and kind(arg_type) not in allowed:
                message = f"`{name}` does not accept an argument of type `{arg_type}`"
                self.report("PP406", message, self.start(arg))
        if name in ("timestamp", "duration") and args:
            self.check_time_literal(name, args[0])
        return sig.result

    def check_time_literal(self, name: str, arg: Any) -> None:
        text = _string_literal(arg)
        if text is None:
            return
        where = self.start(arg)
        try:
            seconds = (
                cv.TimestampType(text).timestamp()
                if name == "timestamp"
                else duration_literal_seconds(text)
            )
        except Exception:
            hint = (
                "use RFC 3339, e.g. `2025-01-31T00:00:00Z`"
                if name == "timestamp"
                else "use a number and a unit (`h`, `m`, `s`, `ms`, `us`, `ns`), e.g. `720h`"
            )
            self.report("PP401", f"invalid {name} `{_clip(text)}`", where, hint)
            return
        if name == "duration":
            units = {m.group(2) for m in _DURATION_PART_RE.finditer(text)}
            if "d" in units:
                hours = seconds / 3600
                shown = f"{int(hours)}h" if hours == int(hours) else f"{hours:g}h"
                message = f"duration unit `d` is not portable CEL, use hours (`{shown}`)"
                self.report("PP407", message, where)

    def ident_arg(self, node: Any) -> _T:
        token = node.children[0]
        name = str(token)
        args = self._args(node, 1)
        if name == "has":
            return self.has(token, args)
        sig = FUNCTIONS.get(name)
        if sig is not None:
            return _T(self.call(token, sig, None, args))
        for arg in args:
            self.value(arg)
        where = (token.line, token.column)
        if name in METHODS or name in MACROS:
            message = f"`{name}` is a method: write `x.{name}(...)`"
            self.report("PP404", message, where)
        else:
            hint = _did_you_mean(name, _ALL_NAMES, "known functions")
            self.report("PP404", f"unknown function `{name}`", where, hint)
        return _T(DYN)

    def dot_ident_arg(self, node: Any) -> _T:
        token = node.children[0]
        for arg in self._args(node, 1):
            self.value(arg)
        message = f"calls with a leading dot (`.{token}(...)`) are not supported"
        self.report("PP404", message, (token.line, token.column))
        return _T(DYN)

    def has(self, token: Any, args: list[Any]) -> _T:
        where = (token.line, token.column)
        if len(args) != 1 or _rule(_unwrap(args[0])) != "member_dot":
            message = "`has` takes one field selection, e.g. `has(account.tier)`"
            self.report("PP404", message, where)
            for arg in args:
                self.value(arg)
            return _T(BOOL)
        self.value(args[0])
        return _T(BOOL)

    def member_dot_arg(self, node: Any) -> _T:
        member, token = node.children[0], node.children[1]
        name = str(token)
        args = self._args(node, 2)
        if name in MACROS:
            return self.macro(member, token, args)
        sig = METHODS.get(name)
        receiver = self.value(member)
        if sig is not None:
            return _T(self.call(token, sig, receiver, args))
        for arg in args:
            self.value(arg)
        where = (token.line, token.column)
        if name in FUNCTIONS or name == "has":
            message = f"`{name}` is a function, not a method: write `{name}(x)`"
            self.report("PP404", message, where)
        else:
            hint = _did_you_mean(name, [*METHODS, *MACROS], "known methods")
            self.report("PP404", f"unknown function `{name}`", where, hint)
        return _T(DYN)

    def macro(self, member: Any, token: Any, args: list[Any]) -> _T:
        name = str(token)
        where = (token.line, token.column)
        result: CelType = BOOL if name in ("all", "exists", "exists_one") else ListType(DYN)
        target = self.visit(member)
        if target.path is not None:
            self.paths.add(target.path)
        if len(args) != 2:
            self.report("PP404", f"`{name}` takes 2 arguments, got {len(args)}", where)
            return _T(result)
        variable = _unwrap(args[0])
        if _rule(variable) != "ident":
            message = f"the first argument of `{name}` must be a variable name"
            self.report("PP404", message, self.start(args[0]))
            return _T(result)
        elem = element_type(target.type)
        if elem is None:
            self.report("PP406", f"`{name}` needs a list or a map, got `{target.type}`", where)
            elem = DYN
        elem_path = (*target.path, "*") if target.path is not None else None
        self.scopes.append((str(variable.children[0]), _T(elem, elem_path)))
        try:
            body = self.value(args[1])
        finally:
            self.scopes.pop()
        if name in _CONDITION_MACROS and body not in _BOOLISH:
            message = f"the condition of `{name}` must be `bool`, got `{body}`"
            self.report("PP406", message, self.start(args[1]))
        if name == "map":
            return _T(ListType(body))
        if name == "filter":
            return _T(ListType(elem))
        return _T(BOOL)


_HANDLERS: Final = {
    "expr": _Checker.ternary,
    "conditionalor": _Checker.logic,
    "conditionaland": _Checker.logic,
    "relation": _Checker.relation,
    "addition": _Checker.arithmetic,
    "multiplication": _Checker.arithmetic,
    "unary": _Checker.unary,
    "member_dot": _Checker.member_dot,
    "member_dot_arg": _Checker.member_dot_arg,
    "member_index": _Checker.member_index,
    "member_object": _Checker.member_object,
    "ident": _Checker.ident,
    "dot_ident": _Checker.dot_ident,
    "ident_arg": _Checker.ident_arg,
    "dot_ident_arg": _Checker.dot_ident_arg,
    "list_lit": _Checker.list_lit,
    "map_lit": _Checker.map_lit,
    "literal": _Checker.literal,
}


# --- activations -----------------------------------------------------------------


class _Unconvertible(Exception):
    """A context value cel-python cannot hold; ``where`` collects the path inside out."""

    def __init__(self, problem: str, error: type[Exception]) -> None:
        super().__init__(problem)
        self.problem = problem
        self.error = error
        self.where: list[str] = []


def _sub_type(declared: CelType | None, key: Any) -> CelType | None:
    if isinstance(declared, ObjectType):
        return declared.field_type(key) if isinstance(key, str) else None
    if isinstance(declared, MapType):
        return declared.value
    if isinstance(declared, ListType):
        return declared.elem
    return None


def _number(value: int | float | Decimal, declared: CelType | None) -> Any:
    if declared == DOUBLE or (declared != INT and not isinstance(value, int)):
        return cv.DoubleType(float(value))
    if not isinstance(value, int):
        try:
            integral = value == int(value)
        except (ValueError, OverflowError):
            integral = False
        if not integral:
            return cv.DoubleType(float(value))
    try:
        return cv.IntType(int(value))
    except ValueError:
        raise _Unconvertible("integer out of the 64-bit range", ValueError) from None


def _to_cel(value: Any, declared: CelType | None) -> Any:
    # The common exact types first, built as cel-python's constructors would build
    # them (without their per-call checks); subclasses and the rest take the long way.
    exact = type(value)
    if exact is str:
        return str.__new__(cv.StringType, value)
    if exact is bool:
        return cv.BoolType(value)
    if exact is int and declared != DOUBLE:
        if _INT64_MIN <= value <= _INT64_MAX:
            return int.__new__(cv.IntType, value)
    elif exact is float and declared != INT:
        return float.__new__(cv.DoubleType, value)
    elif exact is dt.datetime:
        return cv.TimestampType(value if value.tzinfo is not None else value.replace(tzinfo=_UTC))
    elif exact is dict:
        return _map_to_cel(value, declared)
    return _any_to_cel(value, declared)


def _map_to_cel(value: Mapping[Any, Any], declared: CelType | None) -> Any:
    converted: dict[Any, Any] = {}
    for key, item in value.items():
        try:
            converted[_to_cel(key, None)] = _to_cel(item, _sub_type(declared, key))
        except _Unconvertible as exc:
            exc.where.append(f".{key}")
            raise
    result = cv.MapType()
    dict.update(result, converted)  # what MapType(converted) does, without its type checks
    return result


def _any_to_cel(value: Any, declared: CelType | None) -> Any:
    if isinstance(value, str):
        return cv.StringType(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return cv.BoolType(value)
    if isinstance(value, int | float | Decimal):
        return _number(value, declared)
    if isinstance(value, Mapping):
        return _map_to_cel(value, declared)
    if isinstance(value, list | tuple | set | frozenset):
        items: Iterable[Any] = value
        if isinstance(value, set | frozenset):
            try:
                items = sorted(value)
            except TypeError:
                items = list(value)
        elem = _sub_type(declared, None)
        result = []
        for index, item in enumerate(items):
            try:
                result.append(_to_cel(item, elem))
            except _Unconvertible as exc:
                exc.where.append(f"[{index}]")
                raise
        return cv.ListType(result)
    if isinstance(value, dt.datetime):
        return cv.TimestampType(value if value.tzinfo is not None else value.replace(tzinfo=_UTC))
    if isinstance(value, dt.date):
        return cv.TimestampType(dt.datetime(value.year, value.month, value.day, tzinfo=_UTC))
    if isinstance(value, dt.timedelta):
        return cv.DurationType(value)
    if isinstance(value, bytes | bytearray):
        return cv.BytesType(bytes(value))
    raise _Unconvertible(f"unsupported value of type `{type(value).__name__}`", TypeError)


def to_cel(value: Any, declared: CelType | None, where: str) -> Any:
    """One context value as a CEL value, converted as :func:`make_activation` converts it.

    ``where`` is the value's dotted path, used in the ``TypeError`` or
    ``ValueError`` raised for an unsupported value (never the value itself).
    """
    try:
        return _to_cel(value, declared)
    except _Unconvertible as exc:
        raise exc.error(f"{exc.problem} at `{where}{''.join(reversed(exc.where))}`") from None


def cel_key(name: str) -> Any:
    """A text map key as a CEL value, for :func:`cel_map`."""
    return str.__new__(cv.StringType, name)


def cel_map(items: Mapping[Any, Any]) -> Any:
    """A CEL map of already converted keys (see :func:`cel_key`) and values."""
    result = cv.MapType()
    dict.update(result, items)
    return result


def activation_of(values: dict[str, Any]) -> Activation:
    """An activation from root names to values already converted with :func:`to_cel`."""
    return Activation(values)


def make_activation(
    context: Mapping[str, Any],
    *,
    only: Iterable[str] | None = None,
    types: ObjectType | None = None,
) -> Activation:
    """Convert a plain Python context to CEL values once, for many evaluations.

    ``datetime.date`` becomes midnight UTC, naive datetimes are taken as UTC,
    ``Decimal`` becomes a double, sets and tuples become lists. Strings are never
    parsed into timestamps: pass datetimes. ``only`` limits the conversion to the
    named root variables (the union of the rules' :attr:`CompiledExpr.roots`).
    With ``types`` (the environment's context type), integers in fields declared
    ``double`` become doubles and integral floats in ``int`` fields become ints,
    since cel-python never mixes the two at run time. Raises ``TypeError`` or
    ``ValueError`` (naming the path, never the value) for unsupported values.
    """
    wanted = context.keys() if only is None else set(only)
    values: dict[str, Any] = {}
    for name in wanted:
        if name not in context or not isinstance(name, str) or not _IDENT_RE.match(name):
            continue
        declared = types.field_type(name) if types is not None else None
        try:
            values[name] = _to_cel(context[name], declared)
        except _Unconvertible as exc:
            where = name + "".join(reversed(exc.where))
            raise exc.error(f"{exc.problem} at `{where}`") from None
    return Activation(values)


# --- results and errors ----------------------------------------------------------


class _NotAValue(Exception):
    pass


def _to_plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool | cv.BoolType):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, dt.datetime):
        utc = value.astimezone(_UTC)
        return dt.datetime(
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, _UTC
        )
    if isinstance(value, dt.timedelta):
        return dt.timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
    if isinstance(value, Mapping):
        return {_to_plain(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, CELEvalError):
        raise value
    raise _NotAValue


def _source_of(node: Any, source: str) -> str:
    meta = getattr(node, "meta", None)
    start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
    if start is None or end is None:
        return "expression"
    return _clip(source[start:end])


def _describe_eval_error(err: CELEvalError, source: str) -> str:
    """Rebuild an error message from the error's kind and the expression text only."""
    text = str(err.args[0]) if err.args else ""
    tree: Any = getattr(err, "tree", None)
    token: Any = getattr(err, "token", None)
    data = getattr(tree, "data", None)
    if text.startswith("undeclared reference"):
        if token is not None:
            return f"unknown function `{token}`"
        if tree is not None and tree.children and getattr(tree.children[0], "data", "") == "ident":
            return f"no such variable `{tree.children[0].children[0]}`"
        return "no such variable"
    if data == "member_dot":
        member, name = tree.children
        if "field selection" in text:
            return f"cannot select field `{name}` from `{_source_of(member, source)}`"
        return f"no such key `{name}` in `{_source_of(member, source)}`"
    if data == "member_index":
        member, index = tree.children
        where = f"`{_source_of(index, source)}` in `{_source_of(member, source)}`"
        if text == "invalid_argument":
            return f"index out of range: {where}"
        if text == "no such key":
            return f"no such key {where}"
        return f"cannot look up {where}"
    if token is None and tree is None:  # `all`/`exists` fold element errors into one
        return "the macro condition failed for an element"
    where = f"`{token}`" if token is not None else f"`{_source_of(tree, source)}`"
    if "divide by zero" in text:
        return f"division by zero in {where}"
    if "overload" in text:
        return f"no matching overload in {where}"
    if "overflow" in text:
        if token is not None:
            return f"invalid argument for {where}"
        return f"invalid value or overflow in {where}"
    if text == "match error":
        return "invalid regular expression"
    return f"evaluation error in {where}"
