"""Per-call inputs of the gate and the evaluator, and their CEL activation.

:class:`Facts` is what the caller knows about the world at one moment: the
account, its signals, the tenant's other ACTIVE plans and the time. The
activation that CEL sees is built from the facts and the plan **once** per
evaluation and shared by every rule.

``tenant`` and ``plan`` are never taken from the facts: they come from the
plan being evaluated, so a context cannot make a plan look like another
tenant's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from operator import is_
from pathlib import Path
from typing import Any

from planpolicy.cel import (
    Activation,
    CelType,
    ListType,
    MapType,
    ObjectType,
    activation_of,
    cel_key,
    cel_map,
    make_activation,
    to_cel,
)
from planpolicy.diagnostics import Diagnostic
from planpolicy.inputs import INPUT_INVALID, InputError, located, read_document
from planpolicy.loader import SourceDocument
from planpolicy.model import CompiledPlanType, PolicyBundle
from planpolicy.plan import RevenuePlanV1

__all__ = [
    "RESERVED_ROOTS",
    "ActivePlanRef",
    "Facts",
    "FactsFileError",
    "activation_for",
    "activation_without_plan",
    "facts_from_document",
    "facts_from_mapping",
    "load_facts",
    "plan_view",
    "reads_plan",
]

#: Roots the engine fills in itself; a context may not supply them.
RESERVED_ROOTS = frozenset({"plan", "tenant", "now"})

_ACTIVE_PLAN_FIELDS = ("plan_id", "tenant_id", "account_id", "plan_type", "status")

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ActivePlanRef:
    """Another plan that currently occupies a conflict scope."""

    plan_id: str
    tenant_id: str
    account_id: str
    plan_type: str
    status: str = "ACTIVE"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Facts:
    """What is known at evaluation time. ``extra`` holds roots declared by extensions.

    A naive ``now`` is taken as UTC. Facts are read, never changed: the CEL
    values converted from them are kept with them, so the gate, the evaluator
    and every step rule of one turn share one conversion, and so is the
    evaluator's answer for an objective that reads nothing of the plan (build
    new facts, e.g. with :meth:`at`, when the world changes).
    """

    now: datetime
    account: Mapping[str, Any] = field(default_factory=dict)
    signals: Mapping[str, Any] = field(default_factory=dict)
    active_plans: Sequence[ActivePlanRef] = ()
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", _aware(self.now))

    def at(self, now: datetime) -> Facts:
        """The same facts at another time."""
        return Facts(now, self.account, self.signals, self.active_plans, self.extra)


class FactsFileError(ValueError):
    """Context data could not be used; ``problems`` holds ``(path, message)`` pairs."""

    def __init__(self, problems: Sequence[tuple[JsonPath, str]]) -> None:
        super().__init__("; ".join(message for _path, message in problems))
        self.problems = tuple(problems)


def _coerce(value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """Turn ISO strings and dates into aware datetimes where the schema says date-time."""
    if value is None or type(value) in (bool, int, float):
        return value  # nothing to turn into a time
    if "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
    for option in schema.get("anyOf", ()):
        if isinstance(option, Mapping) and option.get("type") != "null":
            return _coerce(value, option, defs)
    if schema.get("format") in ("date-time", "date"):
        if isinstance(value, datetime):
            return _aware(value)
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=UTC)
        if isinstance(value, str):
            try:
                return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                return value  # left as is: CEL reports the type error, failing closed
        return value
    if isinstance(value, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key) or (extra if isinstance(extra, Mapping) else {})
            out[str(key)] = _coerce(item, sub, defs)
        return out
    if isinstance(value, list):
        items = schema.get("items", {})
        return [_coerce(item, items if isinstance(items, Mapping) else {}, defs) for item in value]
    return value


def plan_view(plan: RevenuePlanV1, now: datetime) -> dict[str, Any]:
    """The plan as CEL sees it (``plan.*``)."""
    age = 0
    if plan.activated_at is not None and now > plan.activated_at:
        age = (now - plan.activated_at).days
    return {
        "plan_id": plan.plan_id,
        "plan_type": plan.plan_type,
        "status": plan.status,
        "activated_at": plan.activated_at,
        "expires_at": plan.expires_at,
        "age_days": age,
        "steps": {
            s.action_type: {"status": s.status.value, "attempts": s.attempts} for s in plan.steps
        },
    }


def context_data(
    plan: RevenuePlanV1, facts: Facts, only: frozenset[str] | None = None
) -> dict[str, Any]:
    """The plain context the rules see: facts plus ``plan``, ``tenant`` and ``now``.

    With ``only``, just those roots are built.
    """
    data: dict[str, Any] = {
        key: dict(value)
        for key, value in facts.extra.items()
        if key not in RESERVED_ROOTS and (only is None or key in only)
    }
    if only is None or "account" in only:
        data["account"] = dict(facts.account)
    if only is None or "signals" in only:
        data["signals"] = dict(facts.signals)
    if only is None or "tenant" in only:
        data["tenant"] = {"tenant_id": plan.tenant_id}
    if only is None or "plan" in only:
        data["plan"] = plan_view(plan, facts.now)
    if only is None or "now" in only:
        data["now"] = facts.now
    return data


def activation_for(bundle: PolicyBundle, plan: RevenuePlanV1, facts: Facts) -> Activation:
    """Build the CEL activation for one plan at one moment (once per evaluation).

    Only the context paths the plan type's rules read are converted (see
    :attr:`~planpolicy.model.CompiledPlanType.paths`). Raises ``TypeError`` or
    ``ValueError`` (naming the path, never the value) when a value the rules
    read cannot be turned into a CEL value.
    """
    ptype = bundle.plan_type(plan.plan_type)
    if ptype is None:
        schema = bundle.context_schema
        defs = schema.get("$defs", {})
        props = schema.get("properties", {})
        data = {
            key: value if key in ("plan", "now") else _coerce(value, props.get(key, {}), defs)
            for key, value in context_data(plan, facts).items()
        }
        return make_activation(data, types=bundle.cel.context)
    readers = _readers(bundle, ptype.name, ptype.paths)
    defs = bundle.context_schema.get("$defs", {})
    values = dict(_facts_roots(bundle, ptype.name, ptype.roots, readers, facts))
    if "plan" in readers:
        values["plan"] = readers["plan"].read(plan_view(plan, facts.now), defs)
    if "tenant" in readers:
        values["tenant"] = readers["tenant"].read({"tenant_id": plan.tenant_id}, defs)
    return activation_of(values)


_PLAN_ROOTS = frozenset({"plan", "tenant"})


def reads_plan(bundle: PolicyBundle, plan_type: CompiledPlanType) -> bool:
    """Whether the activations of ``plan_type`` hold anything taken from the plan.

    When they do not, :func:`activation_for` gives every plan of the type the
    same values for the same facts: what the rules make of them depends on the
    facts alone.
    """
    readers = _readers(bundle, plan_type.name, plan_type.paths)
    return not _PLAN_ROOTS.isdisjoint(readers)


def _facts_roots(
    bundle: PolicyBundle,
    name: str,
    roots: frozenset[str],
    readers: Mapping[str, _Reader],
    facts: Facts,
) -> Mapping[str, Any]:
    """The converted roots that come from ``facts`` alone, converted once per Facts object."""
    kept: dict[tuple[str, str], Mapping[str, Any]] = facts.__dict__.setdefault("_cel_roots", {})
    key = (bundle.digest, name)
    found = kept.get(key)
    if found is None:
        defs = bundle.context_schema.get("$defs", {})
        converted = bundle.derived.setdefault("facts.converted", {})
        found = {
            root: _read_root(converted, name, root, readers[root], value, defs)
            for root, value in _facts_data(facts, roots - _PLAN_ROOTS).items()
            if root in readers
        }
        kept[key] = found
    return found


_CONVERTED_MAX = 4096
"""Converted roots kept for reuse per bundle; the cache starts afresh when it is full."""

_Converted = dict[tuple[str, str, int], tuple[Any, tuple[Any, ...], Any]]


def _read_root(
    converted: _Converted,
    name: str,
    root: str,
    reader: _Reader,
    value: Any,
    defs: Mapping[str, Any],
) -> Any:
    """``reader.read(value, defs)``, reused from an earlier call when it provably gives the same.

    A root's conversion depends only on what the reader reads of it. When that
    is all plain dicts down to immutable scalars (see :meth:`_Reader.inputs`),
    the same mapping object with the very same objects at every path read gives
    the same CEL value, so the one converted before is returned. A mapping
    changed in place meanwhile reads other objects (or misses a key) and is
    converted again.
    """
    inputs: list[Any] = []
    if type(value) is not dict or not reader.inputs(value, inputs):
        return reader.read(value, defs)
    key = (name, root, id(value))
    found = converted.get(key)
    if (
        found is not None
        and found[0] is value  # the entry holds the mapping: its id is not reused meanwhile
        and len(found[1]) == len(inputs)
        and all(map(is_, found[1], inputs))
    ):
        return found[2]
    result = reader.read(value, defs)
    if len(converted) >= _CONVERTED_MAX:
        converted.clear()
    converted[key] = (value, tuple(inputs), result)
    return result


def _facts_data(facts: Facts, only: frozenset[str]) -> dict[str, Any]:
    """The roots of the plain context that come from the facts (not ``plan``/``tenant``).

    The mappings are the facts' own: readers only read them.
    """
    data: dict[str, Any] = {
        key: value
        for key, value in facts.extra.items()
        if key not in RESERVED_ROOTS and key in only
    }
    if "account" in only:
        data["account"] = facts.account
    if "signals" in only:
        data["signals"] = facts.signals
    if "now" in only:
        data["now"] = facts.now
    return data


def _read(
    readers: Mapping[str, _Reader], data: Mapping[str, Any], defs: Mapping[str, Any]
) -> dict[str, Any]:
    """``data``'s roots as CEL values through ``readers`` (a root without one is not read)."""
    return {key: readers[key].read(value, defs) for key, value in data.items() if key in readers}


# A path tree maps each key the rules read to the keys read below it, or to _WHOLE
# when a rule uses the value itself (compares it, sizes it, iterates it, indexes it).
_WHOLE: Any = None
PathTree = dict[str, Any]


def _path_tree(paths: frozenset[tuple[str, ...]]) -> PathTree:
    tree: PathTree = {}
    for path in sorted(paths, key=len):
        node = tree
        for index, part in enumerate(path):
            rest = path[index + 1 :]
            if not rest or rest[0] == "*":
                node[part] = _WHOLE
                break
            child = node.setdefault(part, {})
            if child is _WHOLE:
                break
            node = child
    return tree


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema :func:`_coerce` applies to a value: ``$ref`` and nullable ``anyOf`` followed."""
    if "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
    for option in schema.get("anyOf", ()):
        if isinstance(option, Mapping) and option.get("type") != "null":
            return _resolve(option, defs)
    return schema


def _child_type(declared: CelType | None, key: str) -> CelType | None:
    if isinstance(declared, ObjectType):
        return declared.field_type(key)
    if isinstance(declared, MapType):
        return declared.value
    if isinstance(declared, ListType):
        return declared.elem
    return None


_PLAIN = (bool, int, float)
_IMMUTABLE = frozenset({str, int, float, bool, type(None), datetime, date})
_MAPPING = object()  # marks a mapping in _Reader.inputs
_ABSENT = object()  # marks a key the mapping lacks


@dataclass(frozen=True)
class _Reader:
    """How one context value becomes the CEL value the rules read, built once per plan type.

    ``keys`` is None when the rules use the whole value; otherwise only those
    keys are read (a value that is not a mapping is converted whole, so the
    rules meet its type error exactly as they would have).
    """

    where: str
    schema: Mapping[str, Any]
    declared: CelType | None
    coerce: bool
    keys: tuple[tuple[str, Any, _Reader], ...] | None

    def inputs(self, value: Any, out: list[Any]) -> bool:
        """Append to ``out`` every object :meth:`read` reads of ``value``, in order.

        False when one of them could change in place (anything but plain dicts
        and immutable scalars): a conversion of ``value`` cannot then be reused.
        A mapping is marked, and a key it lacks is marked absent, so that two
        values read differently never give the same objects.
        """
        keys = self.keys
        if keys is None or type(value) is not dict:
            if type(value) not in _IMMUTABLE:
                return False
            out.append(value)
            return True
        out.append(_MAPPING)
        for key, _cel, reader in keys:
            if key not in value:
                out.append(_ABSENT)
            elif not reader.inputs(value[key], out):
                return False
        return True

    def read(self, value: Any, defs: Mapping[str, Any]) -> Any:
        keys = self.keys
        if keys is None or not (type(value) is dict or isinstance(value, Mapping)):
            if type(value) is datetime:  # what _coerce makes of a datetime, at any schema
                value = _aware(value)
            elif self.coerce and value is not None and type(value) not in _PLAIN:
                value = _coerce(value, self.schema, defs)
            return to_cel(value, self.declared, self.where)
        return cel_map(
            {cel: reader.read(value[key], defs) for key, cel, reader in keys if key in value}
        )


def _reader(
    where: str,
    node: PathTree | None,
    schema: Mapping[str, Any],
    declared: CelType | None,
    coerce: bool,
    defs: Mapping[str, Any],
) -> _Reader:
    schema = _resolve(schema, defs) if coerce else schema
    if node is None or (coerce and schema.get("format") in ("date-time", "date")):
        return _Reader(where, schema, declared, coerce, None)
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    keys = tuple(
        (
            key,
            cel_key(key),
            _reader(
                f"{where}.{key}",
                sub,
                props.get(key) or (extra if isinstance(extra, Mapping) else {}),
                _child_type(declared, key),
                coerce,
                defs,
            ),
        )
        for key, sub in node.items()
    )
    return _Reader(where, schema, declared, coerce, keys)


def _readers(
    bundle: PolicyBundle, name: str, paths: frozenset[tuple[str, ...]]
) -> Mapping[str, _Reader]:
    """Root name -> reader for the paths a plan type's rules read (cached on the bundle)."""
    cache: dict[str, Mapping[str, _Reader]] = bundle.derived.setdefault("facts.readers", {})
    found = cache.get(name)
    if found is None:
        schema = bundle.context_schema
        defs = schema.get("$defs", {})
        props = schema.get("properties", {})
        context = bundle.cel.context
        found = {
            root: _reader(
                root,
                sub,
                props.get(root, {}),
                context.field_type(root),
                root not in ("plan", "now"),
                defs,
            )
            for root, sub in _path_tree(paths).items()
        }
        cache[name] = found
    return found


def activation_without_plan(
    bundle: PolicyBundle, tenant_id: str, facts: Facts, only: Iterable[str]
) -> Activation:
    """The CEL activation for rules evaluated before any plan exists (proposal rules).

    Like :func:`activation_for` without the ``plan`` root; ``only`` names the
    roots the rules read. Raises ``TypeError`` or ``ValueError`` likewise.
    """
    schema = bundle.context_schema
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    wanted = frozenset(only) - {"plan"}
    data: dict[str, Any] = {
        key: dict(value) for key, value in facts.extra.items() if key not in RESERVED_ROOTS
    }
    data |= {
        "account": dict(facts.account),
        "signals": dict(facts.signals),
        "tenant": {"tenant_id": tenant_id},
    }
    values: dict[str, Any] = {
        key: _coerce(value, props.get(key, {}), defs)
        for key, value in data.items()
        if key in wanted
    }
    values["now"] = facts.now
    return make_activation(values, only=wanted, types=bundle.cel.context)


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    return None


def _active_plans(raw: Any, problems: list[tuple[JsonPath, str]]) -> list[ActivePlanRef]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append((("active_plans",), "`active_plans` must be a list"))
        return []
    found = []
    for i, item in enumerate(raw):
        where: JsonPath = ("active_plans", i)
        if not isinstance(item, Mapping):
            problems.append((where, f"`active_plans[{i}]` must be a mapping"))
            continue
        unknown = sorted(set(map(str, item)) - set(_ACTIVE_PLAN_FIELDS))
        if unknown:
            problems.append((where, f"`active_plans[{i}]` has unknown field `{unknown[0]}`"))
            continue
        values = {name: _text(item.get(name)) for name in _ACTIVE_PLAN_FIELDS}
        missing = [name for name in _ACTIVE_PLAN_FIELDS[:4] if values[name] is None]
        if missing:
            problems.append((where, f"`active_plans[{i}].{missing[0]}` must be given as text"))
            continue
        status = values["status"] or "ACTIVE"
        found.append(
            ActivePlanRef(
                str(values["plan_id"]),
                str(values["tenant_id"]),
                str(values["account_id"]),
                str(values["plan_type"]),
                status,
            )
        )
    return found


def _parse_now(raw: Any, problems: list[tuple[JsonPath, str]]) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            problems.append((("now",), f"`now` is not an ISO-8601 time: `{raw[:40]}`"))
            return None
    problems.append((("now",), "`now` (an ISO-8601 time) is required"))
    return None


def facts_from_mapping(raw: Any) -> Facts:
    """Facts from plain data (a parsed context file); raises :class:`FactsFileError`.

    Keys: ``now`` (required), ``account``, ``signals``, ``active_plans`` and any
    root declared by a ContextExtension. ``plan`` and ``tenant`` are refused:
    the engine takes them from the plan.
    """
    if not isinstance(raw, Mapping):
        raise FactsFileError([((), "a context must be a mapping")])
    problems: list[tuple[JsonPath, str]] = []
    now = _parse_now(raw.get("now"), problems)
    active = _active_plans(raw.get("active_plans"), problems)
    roots: dict[str, Mapping[str, Any]] = {}
    for key, value in raw.items():
        name = str(key)
        if name in ("now", "active_plans"):
            continue
        if name in RESERVED_ROOTS:
            problems.append(
                ((name,), f"`{name}` cannot be set in a context: it comes from the plan")
            )
        elif value is None:
            roots[name] = {}
        elif not isinstance(value, Mapping):
            problems.append(((name,), f"`{name}` must be a mapping"))
        else:
            roots[name] = value
    if problems or now is None:
        raise FactsFileError(problems)
    account = roots.pop("account", {})
    signals = roots.pop("signals", {})
    return Facts(now, account, signals, tuple(active), roots)


def facts_from_document(
    data: Any, source: SourceDocument | None = None, base: JsonPath = ()
) -> Facts:
    """Validate ``data`` (found at ``base`` in ``source``) as a context; raises ``InputError``."""
    try:
        return facts_from_mapping(data)
    except FactsFileError as exc:
        raise InputError(
            [
                Diagnostic(INPUT_INVALID, f"context: {message}", located(source, base, path))
                for path, message in exc.problems
            ]
        ) from None


def load_facts(path: str | Path) -> Facts:
    """Read a context file (YAML or JSON); raises :class:`planpolicy.inputs.InputError`."""
    doc = read_document(path, "context")
    return facts_from_document(doc.data, doc)
