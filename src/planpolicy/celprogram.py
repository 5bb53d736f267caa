"""CEL parse trees compiled into Python closures, with cel-python's semantics.

cel-python's interpreter walks the lark parse tree on every evaluation: one
visitor call per node, a fresh ``Evaluator`` and ``Activation`` per call, and
``typing`` generics subscripted in its hot path. That costs hundreds of
microseconds for a rule of a few nodes. This module walks the tree **once**,
when a bundle loads, and turns each node into a closure that computes the same
value the interpreter would.

The closures do not reimplement CEL: they call cel-python's own operator and
function table (``celpy.evaluation.base_functions``) on cel-python's own value
types, and they catch exactly the Python exceptions the interpreter catches at
each node, turning them into the same ``CELEvalError`` values (same text, same
tree or token), so results and error messages are unchanged. Both sides of
``&&``/``||`` are evaluated, as the interpreter does, because an error raised
(not returned) inside either side must still escape the whole expression.

A construct this module does not handle (message construction, leading-dot
calls, protobuf package names, the non-standard ``reduce``/``min`` macros)
raises :class:`Unsupported` at compile time, and the caller keeps cel-python's
interpreter for that expression. ``tests/test_celprogram.py`` checks the two
against each other over generated expressions and contexts.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from functools import reduce
from typing import Any, Final

import celpy.celtypes as cv
import lark
from celpy.evaluation import (
    CELEvalError,
    base_functions,
    bool_eq,
    bool_ge,
    bool_gt,
    bool_le,
    bool_lt,
    bool_ne,
    boolean,
    celbytes,
    celstr,
    eval_error,
    operator_in,
)

__all__ = ["Program", "Unsupported", "compile_program"]

Env = dict[str, Any]
Program = Callable[[Env], Any]
"""A compiled expression: CEL values by root name -> a CEL value or a ``CELEvalError``.

It may also raise ``CELEvalError`` (as the interpreter does from inside ``map``
and ``filter``) or, for a bug in a value type, another exception.
"""


class Unsupported(Exception):
    """The expression uses a construct only cel-python's interpreter evaluates."""


_REL: Final = {
    "relation_lt": "_<_",
    "relation_le": "_<=_",
    "relation_ge": "_>=_",
    "relation_gt": "_>_",
    "relation_eq": "_==_",
    "relation_ne": "_!=_",
    "relation_in": "_in_",
}
_ADD: Final = {"addition_add": "_+_", "addition_sub": "_-_"}
_MUL: Final = {
    "multiplication_div": "_/_",
    "multiplication_mul": "_*_",
    "multiplication_mod": "_%_",
}
_UNARY: Final = {"unary_not": "!_", "unary_neg": "-_"}
_PASS_THROUGH: Final = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary"}
)
_FALSE: Final = cv.BoolType(False)
_TRUE: Final = cv.BoolType(True)
_AND: Final[Callable[[Any, Any], Any]] = eval_error("no such overload", TypeError)(cv.logical_and)
_OR: Final[Callable[[Any, Any], Any]] = eval_error("no such overload", TypeError)(cv.logical_or)

# cel-python's comparison functions re-apply its `boolean` decorator on every call;
# the same decorator applied once gives the same function without that cost.
_PREBUILT: Final[dict[Callable[..., Any], Callable[..., Any]]] = {
    bool_lt: boolean(operator.lt),
    bool_le: boolean(operator.le),
    bool_gt: boolean(operator.gt),
    bool_ge: boolean(operator.ge),
    bool_eq: boolean(operator.eq),
    bool_ne: boolean(operator.ne),
}


def _operator_in(item: Any, container: Any) -> Any:
    """cel-python's ``in`` without the ``typing`` subscription it performs on every call.

    Same results: an error operand is the result; a match is true; otherwise an
    element that could not be compared makes the result an error, else false.
    """
    if isinstance(item, CELEvalError):
        return item
    if isinstance(container, CELEvalError):
        return container
    result: Any = _FALSE
    for candidate in container:
        try:
            if candidate == item:
                return _TRUE
        except TypeError as ex:
            result = CELEvalError("no such overload", ex.__class__, ex.args)
    return result


_PREBUILT[operator_in] = _operator_in

# Calls never folded at load time: a hostile pattern must not hang `planpolicy lint`.
_NOT_FOLDED: Final = frozenset({"matches"})


def _function(name: str) -> Callable[..., Any]:
    func = base_functions[name]
    return _PREBUILT.get(func, func)


class _Constant:
    """A sub-expression without variables, evaluated once when the bundle loads."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, env: Env) -> Any:
        return self.value


def compile_program(tree: lark.Tree[Any]) -> Program:
    """Compile a parse tree from cel-python's parser; raises :class:`Unsupported`."""
    return _node(tree)


def _rule(tree: Any) -> str:
    data = tree.data
    return getattr(data, "value", data)  # type: ignore[no-any-return]


def _node(tree: Any) -> Program:
    rule = _rule(tree)
    children = tree.children
    if rule in _PASS_THROUGH and len(children) == 1:
        return _node(children[0])
    builder = _BUILDERS.get(rule)
    if builder is None:
        raise Unsupported(rule)
    program = builder(tree)
    if rule == "literal" or not _foldable(tree):
        return program
    try:
        value = program({})
    except Exception:  # evaluated at run time instead, where the error belongs
        return program
    if isinstance(value, CELEvalError):
        return program  # errors stay fresh per evaluation: they may be raised
    return _Constant(value)


def _foldable(tree: Any) -> bool:
    """True when ``tree`` reads no variable and calls nothing that could run long."""
    for node in tree.iter_subtrees():
        rule = _rule(node)
        if rule in ("ident", "dot_ident", "dot_ident_arg", "member_object"):
            return False
        if rule in ("ident_arg", "member_dot_arg"):
            name = node.children[0 if rule == "ident_arg" else 1]
            if getattr(name, "value", None) in _NOT_FOLDED or name in _MACRO_NAMES:
                return False
    return True


def _overload(name: Any, *values: Any) -> str:
    types = ", ".join(str(type(v)) for v in values)
    return f"found no matching overload for {name!r} applied to '({types})'"


def _error(text: str, ex: BaseException, **where: Any) -> CELEvalError:
    value = CELEvalError(text, ex.__class__, ex.args, **where)
    value.__cause__ = ex
    return value


# --- operators ----------------------------------------------------------------------


def _ternary(tree: Any) -> Program:
    cond, then, other = (_node(c) for c in tree.children)
    choose = _function("_?_:_")

    def run(env: Env) -> Any:
        c = cond(env)
        left = right = _FALSE
        try:
            if c:
                left = then(env)
            else:
                right = other(env)
            return choose(c, left, right)
        except TypeError as ex:
            return _error(_overload("_?_:_", c, left, right), ex, tree=tree)

    return run


def _pair(
    func: Callable[[Any, Any], Any],
    name: str,
    left: Program,
    right: Program,
    tree: Any,
    catches: dict[type[BaseException], str],
) -> Program:
    """Both operands evaluated, then ``func``; the exceptions the interpreter catches become errors."""
    caught = tuple(catches)

    def run(env: Env) -> Any:
        a = left(env)
        b = right(env)
        try:
            return func(a, b)
        except TypeError as ex:
            return _error(_overload(name, a, b), ex, tree=tree)
        except caught as ex:
            return _error(_message(catches, ex), ex, tree=tree)

    return run


def _logic(tree: Any) -> Program:
    left, right = (_node(c) for c in tree.children)
    name = "_||_" if _rule(tree) == "conditionalor" else "_&&_"
    return _pair(_function(name), name, left, right, tree, {})


def _binary(
    tables: dict[str, str], catches: dict[type[BaseException], str]
) -> Callable[[Any], Program]:
    def build(tree: Any) -> Program:
        op_tree, right_tree = tree.children
        op = _rule(op_tree)
        if len(op_tree.children) != 1:
            raise Unsupported(op)
        left, right = _node(op_tree.children[0]), _node(right_tree)
        return _pair(_function(tables[op]), op, left, right, tree, catches)

    return build


def _message(catches: dict[type[BaseException], str], ex: BaseException) -> str:
    for kind, text in catches.items():
        if isinstance(ex, kind):
            return text
    raise ex  # pragma: no cover - only caught kinds reach here


_relation = _binary(_REL, {})
_addition = _binary(
    _ADD, {ValueError: "return error for overflow", OverflowError: "return error for overflow"}
)
_multiplication = _binary(
    _MUL,
    {
        ZeroDivisionError: "modulus or divide by zero",
        ValueError: "return error for overflow",
        OverflowError: "return error for overflow",
    },
)


def _unary(tree: Any) -> Program:
    op_tree, right_tree = tree.children
    op = _rule(op_tree)
    func = _function(_UNARY[op])
    operand = _node(right_tree)

    def run(env: Env) -> Any:
        value = operand(env)
        try:
            return func(value)
        except TypeError as ex:
            return _error(_overload(op, value), ex, tree=tree)
        except ValueError as ex:
            return _error("return error for overflow", ex, tree=tree)

    return run


# --- members ------------------------------------------------------------------------


def _member(tree: Any) -> Program:
    if len(tree.children) != 1:
        raise Unsupported("member")
    return _node(tree.children[0])


def _member_dot(tree: Any) -> Program:
    member_tree, token = tree.children
    base = _node(member_tree)
    name = token.value

    def run(env: Env) -> Any:
        member = base(env)
        if isinstance(member, CELEvalError):
            return member
        if isinstance(member, cv.MapType):
            try:  # a field name is always a valid key: MapType's key check can be skipped
                return dict.__getitem__(member, name)
            except KeyError:
                return CELEvalError(
                    f"no such member in mapping: {name!r}", KeyError, None, tree=tree
                )
        if isinstance(member, cv.MessageType):  # pragma: no cover - never in an activation
            return member.get(name)
        text = f"{member!r} with type: '{type(member)}' does not support field selection"
        return CELEvalError(text, TypeError, None, tree=tree)

    return run


def _member_index(tree: Any) -> Program:
    member_tree, index_tree = tree.children
    base, index = _node(member_tree), _node(index_tree)
    getitem = _function("_[_]")

    def run(env: Env) -> Any:
        member = base(env)
        key = index(env)
        try:
            return getitem(member, key)
        except TypeError as ex:
            return _error(_overload("_[_]", member, key), ex, tree=tree)
        except KeyError as ex:
            return _error("no such key", ex, tree=tree)
        except IndexError as ex:
            return _error("invalid_argument", ex, tree=tree)

    return run


def _args(tree: Any) -> list[Program]:
    if tree is None:
        return []
    if _rule(tree) != "exprlist":
        raise Unsupported(_rule(tree))
    return [_node(c) for c in tree.children]


def _call(token: Any, func: Callable[..., Any], values: list[Any]) -> Any:
    try:
        return func(*values)
    except ValueError as ex:
        return _error("return error for overflow", ex, token=token)
    except (TypeError, AttributeError) as ex:
        return _error("no such overload", ex, token=token)


def _undeclared(token: Any) -> CELEvalError:
    return CELEvalError(f"undeclared reference to {token.value!r}", KeyError, None, token=token)


def _member_dot_arg(tree: Any) -> Program:
    member_tree, token = tree.children[:2]
    name = token.value
    if name in _MACROS:
        return _MACROS[name](tree)
    if name in ("reduce", "min"):
        raise Unsupported(name)
    base = _node(member_tree)
    has_args = len(tree.children) > 2
    args = _args(tree.children[2]) if has_args else []
    func = base_functions.get(name)

    def run(env: Env) -> Any:
        target = base(env)
        values = [arg(env) for arg in args]
        if func is None:
            return _undeclared(token)
        if isinstance(target, CELEvalError):
            return target
        for value in values:  # the argument list is one value: its first error
            if isinstance(value, CELEvalError):
                return value
        return _call(token, func, [target, *values])

    return run


# --- macros -------------------------------------------------------------------------


def _macro_parts(tree: Any) -> tuple[Program, str, Program]:
    member_tree, token = tree.children[:2]
    if len(tree.children) != 3 or len(tree.children[2].children) != 2:
        raise Unsupported(token.value)
    var_tree, body_tree = tree.children[2].children
    idents = list(var_tree.find_data("ident"))
    if len(idents) != 1:
        raise Unsupported(token.value)
    return _node(member_tree), str(idents[0].children[0].value), _node(body_tree)


def _raising(body: Program, name: str) -> Callable[[Env, Any], Any]:
    """The interpreter's plain macro body: an error *raises*, escaping the expression."""

    def run(env: Env, item: Any) -> Any:
        inner = dict(env)
        inner[name] = item
        value = body(inner)
        if isinstance(value, CELEvalError):
            raise value
        return value

    return run


def _absorbing(body: Program, name: str) -> Callable[[Env, Any], Any]:
    """The interpreter's ``all``/``exists`` body: an error is a value for ``&&``/``||``."""

    def run(env: Env, item: Any) -> Any:
        inner = dict(env)
        inner[name] = item
        try:
            return body(inner)
        except CELEvalError as ex:
            return ex

    return run


def _comprehension(
    fold: Callable[[Callable[[Env, Any], Any], Env, Iterable[Any]], Any],
    absorbing: bool,
) -> Callable[[Any], Program]:
    def build(tree: Any) -> Program:
        target, name, body = _macro_parts(tree)
        step = (_absorbing if absorbing else _raising)(body, name)

        def run(env: Env) -> Any:
            items = target(env)
            if isinstance(items, CELEvalError):
                return items
            return fold(step, env, items)

        return run

    return build


def _fold_map(step: Callable[[Env, Any], Any], env: Env, items: Iterable[Any]) -> Any:
    return cv.ListType([step(env, item) for item in items])


def _fold_filter(step: Callable[[Env, Any], Any], env: Env, items: Iterable[Any]) -> Any:
    return cv.ListType([item for item in items if step(env, item)])


def _fold_all(step: Callable[[Env, Any], Any], env: Env, items: Iterable[Any]) -> Any:
    return reduce(_AND, (step(env, item) for item in items), _TRUE)


def _fold_exists(step: Callable[[Env, Any], Any], env: Env, items: Iterable[Any]) -> Any:
    return reduce(_OR, (step(env, item) for item in items), _FALSE)


def _fold_exists_one(step: Callable[[Env, Any], Any], env: Env, items: Iterable[Any]) -> Any:
    return cv.BoolType(sum(1 for item in items if bool(step(env, item))) == 1)


_MACRO_NAMES: Final = frozenset({"map", "filter", "all", "exists", "exists_one", "reduce", "min"})
_MACROS: Final[dict[str, Callable[[Any], Program]]] = {
    "map": _comprehension(_fold_map, absorbing=False),
    "filter": _comprehension(_fold_filter, absorbing=False),
    "all": _comprehension(_fold_all, absorbing=True),
    "exists": _comprehension(_fold_exists, absorbing=True),
    "exists_one": _comprehension(_fold_exists_one, absorbing=False),
}


# --- primaries ----------------------------------------------------------------------


def _primary(tree: Any) -> Program:
    if len(tree.children) != 1:
        raise Unsupported("primary")
    child = tree.children[0]
    rule = _rule(child)
    if rule in ("literal", "paren_expr"):
        return _node(child) if rule == "literal" else _node(child.children[0])
    if rule == "list_lit":
        return _list(child)
    if rule == "map_lit":
        return _map(child, tree)
    if rule == "ident":
        return _ident(child, tree)
    if rule == "ident_arg":
        return _ident_arg(child)
    raise Unsupported(rule)  # dot_ident, dot_ident_arg


def _list(tree: Any) -> Program:
    if not tree.children:
        return lambda env: cv.ListType()
    items = _args(tree.children[0])

    def run(env: Env) -> Any:
        values = [item(env) for item in items]
        for value in values:
            if isinstance(value, CELEvalError):
                return value
        return cv.ListType(values)

    return run


def _map(tree: Any, primary: Any) -> Program:
    if not tree.children:
        return lambda env: cv.MapType()
    inits = tree.children[0]
    if _rule(inits) != "mapinits":
        raise Unsupported(_rule(inits))
    parts = [_node(c) for c in inits.children]

    def run(env: Env) -> Any:
        try:  # the interpreter evaluates the entries inside this guard too
            values = [part(env) for part in parts]
            result = cv.MapType()
            for key, value in zip(values[0::2], values[1::2], strict=False):
                if key in result:
                    raise ValueError(f"Duplicate key {key!r}")
                result[key] = value
        except (ValueError, TypeError) as ex:
            return CELEvalError(ex.args[0], ex.__class__, ex.args, tree=primary)
        return result

    return run


def _ident(tree: Any, primary: Any) -> Program:
    token = tree.children[0]
    name = token.value
    if name == "google":  # protobuf package names resolve through cel-python's registry
        raise Unsupported(name)
    fallback = base_functions.get(name, _MISSING)

    def run(env: Env) -> Any:
        value = env.get(name, _MISSING)
        if value is _MISSING:
            if fallback is _MISSING:
                return CELEvalError(
                    f"undeclared reference to '{token}'", KeyError, (name,), tree=primary
                )
            return fallback
        return value

    return run


_MISSING: Final = object()


def _ident_arg(tree: Any) -> Program:
    token = tree.children[0]
    name = token.value
    args = _args(tree.children[1]) if len(tree.children) > 1 else []
    if name == "has":
        if len(args) != 1:
            raise Unsupported("has")
        (arg,) = args
        return lambda env: cv.BoolType(not isinstance(arg(env), CELEvalError))
    if name == "dyn":
        if len(args) != 1:
            raise Unsupported("dyn")
        return args[0]
    func = base_functions.get(name)

    def run(env: Env) -> Any:
        values = [arg(env) for arg in args]
        if func is None:
            return _undeclared(token)
        for value in values:
            if isinstance(value, CELEvalError):
                return value
        return _call(token, func, values)

    return run


def _literal(tree: Any) -> Program:
    if len(tree.children) != 1:
        raise Unsupported("literal")
    token = tree.children[0]
    kind = token.type
    try:
        if kind == "FLOAT_LIT":
            value: Any = cv.DoubleType(token.value)
        elif kind == "INT_LIT":
            value = cv.IntType(token.value)
        elif kind == "UINT_LIT":
            if token.value[-1].lower() != "u":
                raise Unsupported(kind)
            value = cv.UintType(token.value[:-1])
        elif kind in ("MLSTRING_LIT", "STRING_LIT"):
            value = celstr(token)
        elif kind == "BYTES_LIT":
            value = celbytes(token)
        elif kind == "BOOL_LIT":
            value = cv.BoolType(token.value.lower() == "true")
        elif kind == "NULL_LIT":
            value = None
        else:
            raise Unsupported(kind)
    except ValueError as ex:
        args = ex.args

        def failed(env: Env) -> Any:  # a fresh error per evaluation: errors may be raised
            return CELEvalError(args[0], ValueError, args, tree=tree)

        return failed
    return lambda env: value


_BUILDERS: Final[dict[str, Callable[[Any], Program]]] = {
    "expr": _ternary,
    "conditionalor": _logic,
    "conditionaland": _logic,
    "relation": _relation,
    "addition": _addition,
    "multiplication": _multiplication,
    "unary": _unary,
    "member": _member,
    "member_dot": _member_dot,
    "member_dot_arg": _member_dot_arg,
    "member_index": _member_index,
    "primary": _primary,
    "literal": _literal,
}
