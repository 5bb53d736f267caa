"""In-memory plan store for unit tests and simulation.

Same contract as the durable adapters, in one process: every operation runs
under one lock, and nothing survives the process.

Plans and attempts are kept decoded. A plan is written the way a durable
adapter writes it (encoded to JSON and validated back, so an invalid plan is
refused and the stored form is exactly what a durable store would read back),
but only once per write. An update that hands back the stored plan's own
values for most fields (a plan read from the store and changed in a few
places) takes that round trip field by field, for the changed fields only
(:func:`orchestrator.adapters.incremental.stored_update`): the same result.

Plans are shared, not copied: the stored form is sealed
(:func:`planpolicy.plan.read_only`: the plan and its steps are frozen records,
the step list and the parameters refuse changes in place), so reads and
writes hand out the very plan the store keeps, and a caller can no more
change the store through it than through a plan decoded from JSON. What a
caller passes in is never kept: its changed fields go through the round trip,
which makes new values. Attempts, whose outcomes are plain dicts, go out as
detached copies (:func:`detached`).

Ledger entries, written often and read rarely, are kept as JSON. A write
places its entries (seq, plan version) and keeps their JSON data; the hash
chain over them is computed when the ledger is next read, in order, which
gives exactly the hashes a durable store computes at the write (each hash
depends only on the entry and the hash before it, and neither changes).
Chained entries are kept as JSON text, as a durable store keeps them: text
costs the garbage collector nothing, where tens of thousands of decoded
entries would be traversed by every full collection of a long simulation.
"""

from __future__ import annotations

import copy
import enum
import json
import math
import threading
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel

from orchestrator.adapters import codec
from orchestrator.adapters.incremental import stored_update
from orchestrator.errors import (
    AlreadyExists,
    FenceLost,
    GuardConflict,
    NotFound,
    VersionConflict,
)
from orchestrator.ledger import (
    MAX_ENTRIES_PER_WRITE,
    LedgerDraft,
    LedgerEntry,
    LedgerHead,
    chain_entries,
    data_hash,
)
from orchestrator.records import Fence, Page, PlanRef, StepAttempt
from planpolicy.plan import RevenuePlanV1, read_only

__all__ = ["MemoryStore", "detached"]

_M = TypeVar("_M", bound=BaseModel)

_PlanKey = tuple[str, str]
_GuardKey = tuple[str, str, str]
_AttemptKey = tuple[str, str, str, int]


_ATOMIC: tuple[type, ...] = (
    str,
    bytes,
    int,
    float,
    complex,
    bool,
    type(None),
    datetime,
    date,
    timedelta,
    Decimal,
    uuid.UUID,
    enum.Enum,
)
"""Immutable value types: a copy may share them."""

_atomic_types: set[type] = {str, int, float, bool, type(None), datetime, uuid.UUID}
_copied_fields: dict[type, tuple[int, tuple[tuple[str, int], ...]]] = {}
_set_attr = object.__setattr__


def _atomic_annotation(annotation: Any) -> bool:
    """True when every value a field of this type validates to is immutable."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _atomic_annotation(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return all(_atomic_annotation(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return all(type(arg) in _atomic_types for arg in typing.get_args(annotation))
    if annotation is None or annotation is AwareDatetime:
        return True
    return isinstance(annotation, type) and issubclass(annotation, _ATOMIC)


_ANY = 0  # copy whatever the value holds (see _detach)
_FLAT_DICT = 1  # a dict whose values are declared immutable: a shallow copy detaches it
_MODEL_LIST = 2  # a list of models: a list of their detached copies


def _copy_kind(annotation: Any) -> int:
    """How a field of this (mutable) type is copied."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2 and _atomic_annotation(args[1]):
        return _FLAT_DICT
    if (
        origin is list
        and len(args) == 1
        and isinstance(args[0], type)
        and issubclass(args[0], BaseModel)
    ):
        return _MODEL_LIST
    return _ANY


def _fields_to_copy(cls: type[BaseModel]) -> tuple[int, tuple[tuple[str, int], ...]]:
    """How many fields ``cls`` has, and those that may hold a mutable value (how to copy each)."""
    found = _copied_fields.get(cls)
    if found is None:
        fields = cls.model_fields
        names = tuple(
            (name, _copy_kind(info.annotation))
            for name, info in fields.items()
            if not _atomic_annotation(info.annotation)
        )
        found = _copied_fields[cls] = (len(fields), names)
    return found


def _detach(value: Any) -> Any:
    kind = type(value)
    if kind in _atomic_types:
        return value
    if kind is list:
        return [_detach(item) for item in value]
    if kind is dict:
        return {key: _detach(item) for key, item in value.items()}
    if isinstance(value, BaseModel):
        return detached(value)
    if issubclass(kind, _ATOMIC):  # immutable: share it (and remember the type)
        _atomic_types.add(kind)
        return value
    return copy.deepcopy(value)


def detached(model: _M) -> _M:
    """A copy of ``model`` that shares no mutable object with it (immutable values are shared).

    What ``model_copy(deep=True)`` gives, without ``deepcopy``'s cost: lists,
    dicts and nested models are copied, strings, numbers, times, UUIDs and
    enum members are shared, anything else is deep-copied. No validation runs.

    ``model`` must be a validated instance (the store validates everything it
    keeps): a field declared with an immutable type (``str``, ``int``, a
    datetime, an enum, ...) is then known to hold an immutable value and is
    shared without looking; every other field is copied by value.
    """
    copier = _copiers.get(type(model))
    if copier is None:
        copier = _copiers[type(model)] = _copier(type(model))
    return copier(model)  # type: ignore[no-any-return]


_copiers: dict[type, Callable[[Any], Any]] = {}


def _copier(cls: type[BaseModel]) -> Callable[[Any], Any]:
    """The function making :func:`detached` copies of ``cls`` instances (made once per class)."""
    count, names = _fields_to_copy(cls)
    flat = tuple(name for name, kind in names if kind == _FLAT_DICT)
    lists = tuple(name for name, kind in names if kind == _MODEL_LIST)
    others = tuple(name for name, kind in names if kind == _ANY)
    make = cls.__new__

    def copy_model(model: Any) -> Any:
        fields = model.__dict__
        copied = fields.copy()
        if len(fields) != count:  # not an instance as validation builds it: copy every value
            for name, value in fields.items():
                copied[name] = _detach(value)
        else:
            for name in flat:
                value = fields.get(name)
                if type(value) is dict:
                    copied[name] = value.copy()  # validated: its values are of immutable types
                elif type(value) not in _atomic_types:
                    copied[name] = _detach(value)
            for name in lists:
                value = fields.get(name)
                if type(value) is list:
                    copied[name] = [(_copiers.get(type(item)) or _detach)(item) for item in value]
                elif type(value) not in _atomic_types:
                    copied[name] = _detach(value)
            for name in others:
                value = fields.get(name)
                if type(value) not in _atomic_types:
                    copied[name] = _detach(value)
        out = make(cls)
        _set_attr(out, "__dict__", copied)
        _set_attr(out, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
        extra = model.__pydantic_extra__
        _set_attr(out, "__pydantic_extra__", None if extra is None else _detach(extra))
        private = getattr(model, "__pydantic_private__", None)
        _set_attr(out, "__pydantic_private__", None if private is None else copy.deepcopy(private))
        return out

    return copy_model


_JSON_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> bool:
    """False when a float in ``value`` (JSON data) is NaN or infinite (not JSON)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return True
    for item in value:
        if type(item) in _NOT_FLOAT_OR_NESTED:
            continue
        if not _finite(item):
            return False
    return True


_NOT_FLOAT_OR_NESTED = frozenset({str, int, bool, type(None)})
_DRAFT_JSON = LedgerDraft.__pydantic_serializer__.to_python


@dataclass(slots=True)
class _Ledger:
    """One plan's ledger: chained entries (JSON text), then placed entries not hashed yet."""

    docs: list[str] = field(default_factory=list)
    head: LedgerHead = field(default_factory=LedgerHead)  # the last chained entry
    placed: list[dict[str, Any]] = field(default_factory=list)  # JSON data, no prev_hash/hash
    seq: int = 0  # the last entry's seq, chained or not

    def add(
        self, tenant_id: str, plan_id: str, drafts: Sequence[LedgerDraft], *, plan_version: int
    ) -> None:
        """Place ``drafts`` after the last entry; their hashes are chained by :meth:`chain`.

        Drafts of another type or with a value that has no JSON text are
        chained at once, by :func:`chain_entries`, which refuses what it refuses.
        """
        if len(drafts) > MAX_ENTRIES_PER_WRITE:
            raise ValueError(
                f"at most {MAX_ENTRIES_PER_WRITE} ledger entries per write, got {len(drafts)}"
            )
        placed: list[dict[str, Any]] = []
        seq = self.seq
        for draft in drafts:
            if type(draft) is not LedgerDraft:
                placed = []
                break
            # model_dump(mode="json"): new containers, nothing a caller holds
            data = _DRAFT_JSON(draft, mode="json")
            if not _finite(data["evidence"]):
                placed = []
                break
            seq += 1
            data["tenant_id"] = tenant_id
            data["plan_id"] = plan_id
            data["seq"] = seq
            data["plan_version"] = plan_version
            placed.append(data)
        if len(placed) == len(drafts):
            self.placed += placed
            self.seq = seq
            return
        self.chain()
        chained = chain_entries(tenant_id, plan_id, self.head, drafts, plan_version=plan_version)
        self.keep(chained)

    def keep(self, chained: Sequence[LedgerEntry]) -> None:
        """Append entries chained after :attr:`head` (nothing placed is pending)."""
        if chained:
            self.docs.extend(codec.entry_to_json(e) for e in chained)
            self.head = LedgerHead(chained[-1].seq, chained[-1].hash)
            self.seq = chained[-1].seq

    def chain(self) -> None:
        """Chain the placed entries' hashes, in order, as :func:`chain_entries` does."""
        if not self.placed:
            return
        prev = self.head.hash
        docs = self.docs
        for data in self.placed:
            data["prev_hash"] = prev
            prev = data["hash"] = data_hash(data)
            docs.append(_JSON_TEXT.encode(data))
        self.head = LedgerHead(self.seq, prev)
        self.placed = []

    def entries(self) -> list[LedgerEntry]:
        self.chain()
        return [codec.entry_from_json(doc) for doc in self.docs]


@dataclass(slots=True)
class _PlanRow:
    plan: RevenuePlanV1  # the stored form, sealed (read_only): handed out as it is
    holds_guard: bool = False


@dataclass(slots=True)
class _Lease:
    token: int = 0
    owner: str | None = None
    expires_at: datetime | None = None


@dataclass(slots=True)
class _State:
    plans: dict[_PlanKey, _PlanRow] = field(default_factory=dict)
    guards: dict[_GuardKey, str] = field(default_factory=dict)
    leases: dict[_PlanKey, _Lease] = field(default_factory=dict)
    attempts: dict[_AttemptKey, StepAttempt] = field(default_factory=dict)
    ledger: dict[_PlanKey, _Ledger] = field(default_factory=dict)


class MemoryStore:
    """A :class:`~orchestrator.ports.ManagedStore` held in a dict, guarded by a lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = _State()

    # -- lifecycle -----------------------------------------------------------

    def init(self) -> None:
        """Nothing to create."""

    def close(self) -> None:
        """Nothing to release."""

    # -- plans ---------------------------------------------------------------

    def create_plan(self, plan: RevenuePlanV1, entries: Sequence[LedgerDraft]) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.create_plan`."""
        codec.check_entries(entries, at_least=1)
        stored = read_only(codec.stored_form(plan, version=1)[0])
        key = (plan.tenant_id, plan.plan_id)
        with self._lock:
            if key in self._state.plans:
                raise AlreadyExists(*key)
            ledger = _Ledger()
            ledger.add(*key, entries, plan_version=1)
            self._put_plan(stored)
            self._state.ledger[key] = ledger
        return stored

    def get_plan(self, tenant_id: str, plan_id: str) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.get_plan`."""
        with self._lock:
            return self._row(tenant_id, plan_id).plan

    def list_plans(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RevenuePlanV1]:
        """See :meth:`orchestrator.ports.PlanStore.list_plans`."""
        codec.check_limit(limit)
        scope = {"tenant": tenant_id, "status": status, "account": account_id}
        after = str(codec.decode_cursor(cursor, scope)) if cursor else ""
        with self._lock:
            rows = [
                row
                for (tenant, _), row in self._state.plans.items()
                if tenant == tenant_id
                and (status is None or row.plan.status == status)
                and (account_id is None or row.plan.account_id == account_id)
                and codec.list_key(row.plan) > after
            ]
        rows.sort(key=lambda row: codec.list_key(row.plan))
        page = rows[:limit]
        items = [row.plan for row in page]
        more = len(rows) > limit
        next_cursor = codec.encode_cursor(scope, codec.list_key(page[-1].plan)) if more else None
        return Page(items=items, next_cursor=next_cursor)

    def update_plan(
        self,
        plan: RevenuePlanV1,
        *,
        expected_version: int,
        entries: Sequence[LedgerDraft] = (),
        fence: Fence | None = None,
        activate_guard: bool = False,
        release_guard: bool = False,
        attempts: Sequence[StepAttempt] = (),
    ) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.update_plan`."""
        codec.check_update_args(
            plan,
            entries=entries,
            fence=fence,
            activate_guard=activate_guard,
            release_guard=release_guard,
            attempts=attempts,
        )
        key = (plan.tenant_id, plan.plan_id)
        with self._lock:
            row = self._row(*key)
            codec.check_identity(row.plan, plan)
            if fence is not None:
                self._check_fence(fence)
            if row.plan.version != expected_version:
                raise VersionConflict(*key, expected_version, row.plan.version)
            guard = (plan.tenant_id, plan.account_id, plan.plan_type)
            holder = self._state.guards.get(guard)
            if activate_guard and holder not in (None, plan.plan_id):
                raise GuardConflict(*guard, holder)
            for attempt in attempts:
                if self._attempt_key(attempt) not in self._state.attempts:
                    raise NotFound(plan.tenant_id, attempt.idempotency_key, "attempt")
            # every check passed: apply all of it
            new_version = expected_version + 1
            stored = stored_update(row.plan, plan, new_version) or read_only(
                codec.stored_form(plan, version=new_version)[0]
            )
            self._state.ledger[key].add(*key, entries, plan_version=new_version)
            holds = row.holds_guard
            if activate_guard:
                self._state.guards[guard] = plan.plan_id
                holds = True
            if release_guard and row.holds_guard and holder == plan.plan_id:
                del self._state.guards[guard]
                holds = False
            self._put_plan(stored, holds_guard=holds)
            for attempt in attempts:
                assert fence is not None  # check_update_args guarantees it
                stamped = codec.checked_attempt(attempt, fence=fence.token)
                self._state.attempts[self._attempt_key(attempt)] = stamped
        return stored

    def active_plan_for(self, tenant_id: str, account_id: str, plan_type: str) -> str | None:
        """See :meth:`orchestrator.ports.PlanStore.active_plan_for`."""
        with self._lock:
            return self._state.guards.get((tenant_id, account_id, plan_type))

    def due_plans(self, now: datetime, *, limit: int = 100) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.PlanStore.due_plans` (a scan: fine in memory)."""
        codec.check_limit(limit)
        bound = codec.time_key(now)
        with self._lock:
            due = [
                (codec.time_key(row.plan.next_due_at), tenant, plan_id, row.plan.next_due_at)
                for (tenant, plan_id), row in self._state.plans.items()
                if row.plan.next_due_at is not None
                and codec.time_key(row.plan.next_due_at) <= bound
            ]
        due.sort()
        return [PlanRef(tenant, plan_id, at) for _, tenant, plan_id, at in due[:limit]]

    # -- leases and attempts -------------------------------------------------

    def acquire_lease(
        self, tenant_id: str, plan_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> Fence | None:
        """See :meth:`orchestrator.ports.PlanStore.acquire_lease`."""
        with self._lock:
            self._row(tenant_id, plan_id)
            lease = self._state.leases.setdefault((tenant_id, plan_id), _Lease())
            free = lease.owner is None or lease.expires_at is None or lease.expires_at <= now
            if not free and lease.owner != owner:
                return None
            lease.token += 1
            lease.owner = owner
            lease.expires_at = now + ttl
            return Fence(tenant_id, plan_id, owner, lease.token, lease.expires_at)

    def release_lease(self, fence: Fence) -> None:
        """See :meth:`orchestrator.ports.PlanStore.release_lease`."""
        with self._lock:
            lease = self._state.leases.get((fence.tenant_id, fence.plan_id))
            if lease is not None and lease.token == fence.token:
                lease.owner = None
                lease.expires_at = None

    def put_attempt(self, attempt: StepAttempt, fence: Fence) -> bool:
        """See :meth:`orchestrator.ports.PlanStore.put_attempt`."""
        codec.check_fence_scope(fence, attempt.tenant_id, attempt.plan_id)
        with self._lock:
            self._check_fence(fence)
            key = self._attempt_key(attempt)
            if key in self._state.attempts:
                return False
            self._state.attempts[key] = codec.checked_attempt(attempt, fence=fence.token)
            return True

    def get_attempt(
        self, tenant_id: str, plan_id: str, step_id: uuid.UUID, attempt: int
    ) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.get_attempt`."""
        with self._lock:
            found = self._state.attempts.get((tenant_id, plan_id, str(step_id), attempt))
        if found is None:
            raise NotFound(tenant_id, f"{plan_id}:{step_id}:{attempt}", "attempt")
        return detached(found)

    def update_attempt(self, attempt: StepAttempt, fence: Fence) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.update_attempt`."""
        codec.check_fence_scope(fence, attempt.tenant_id, attempt.plan_id)
        with self._lock:
            self._check_fence(fence)
            key = self._attempt_key(attempt)
            if key not in self._state.attempts:
                raise NotFound(attempt.tenant_id, attempt.idempotency_key, "attempt")
            stored = codec.checked_attempt(attempt, fence=fence.token)
            self._state.attempts[key] = stored
            return detached(stored)

    def list_attempts(self, tenant_id: str, plan_id: str) -> list[StepAttempt]:
        """See :meth:`orchestrator.ports.PlanStore.list_attempts`."""
        with self._lock:
            found = [
                (key, value)
                for key, value in self._state.attempts.items()
                if key[:2] == (tenant_id, plan_id)
            ]
        return [detached(value) for _, value in sorted(found, key=lambda kv: kv[0])]

    # -- ledger --------------------------------------------------------------

    def ledger(self, tenant_id: str, plan_id: str) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.ledger`."""
        with self._lock:
            self._row(tenant_id, plan_id)
            return self._state.ledger[(tenant_id, plan_id)].entries()

    def ledger_data(self, tenant_id: str, plan_id: str) -> list[dict[str, Any]]:
        """The plan's ledger as JSON data (``model_dump(mode="json")``), oldest first, unchained.

        Entries not read since they were written lack ``prev_hash`` and
        ``hash`` (reading them does not chain them); the others have theirs.
        """
        with self._lock:
            self._row(tenant_id, plan_id)
            ledger = self._state.ledger[(tenant_id, plan_id)]
            return [json.loads(doc) for doc in ledger.docs] + [dict(d) for d in ledger.placed]

    def append_ledger(
        self,
        tenant_id: str,
        plan_id: str,
        entries: Sequence[LedgerDraft],
        *,
        fence: Fence | None = None,
    ) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.append_ledger`."""
        codec.check_entries(entries)
        if fence is not None:
            codec.check_fence_scope(fence, tenant_id, plan_id)
        with self._lock:
            row = self._row(tenant_id, plan_id)
            if fence is not None:
                self._check_fence(fence)
            ledger = self._state.ledger[(tenant_id, plan_id)]
            ledger.chain()
            chained = chain_entries(
                tenant_id, plan_id, ledger.head, entries, plan_version=row.plan.version
            )
            ledger.keep(chained)
            return chained  # kept as JSON: the caller may have these

    # -- admin ---------------------------------------------------------------

    def scan_plans(self) -> Iterator[PlanRef]:
        """See :meth:`orchestrator.ports.StoreAdmin.scan_plans`."""
        with self._lock:
            refs = [
                PlanRef(tenant, plan_id, row.plan.next_due_at)
                for (tenant, plan_id), row in sorted(self._state.plans.items())
            ]
        return iter(refs)

    def find_plan(self, plan_id: str) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.StoreAdmin.find_plan`."""
        return [ref for ref in self.scan_plans() if ref.plan_id == plan_id]

    def ledger_snapshot(self, tenant_id: str, plan_id: str) -> tuple[LedgerHead, list[LedgerEntry]]:
        """See :meth:`orchestrator.ports.StoreAdmin.ledger_snapshot`."""
        with self._lock:
            self._row(tenant_id, plan_id)
            ledger = self._state.ledger[(tenant_id, plan_id)]
            entries = ledger.entries()
            return ledger.head, entries

    # -- helpers -------------------------------------------------------------

    def _row(self, tenant_id: str, plan_id: str) -> _PlanRow:
        row = self._state.plans.get((tenant_id, plan_id))
        if row is None:
            raise NotFound(tenant_id, plan_id)
        return row

    def _put_plan(self, plan: RevenuePlanV1, *, holds_guard: bool = False) -> None:
        """Keep ``plan``, a sealed stored form (made by the store: no caller held it before)."""
        self._state.plans[(plan.tenant_id, plan.plan_id)] = _PlanRow(
            plan=plan, holds_guard=holds_guard
        )

    def _check_fence(self, fence: Fence) -> None:
        lease = self._state.leases.get((fence.tenant_id, fence.plan_id))
        if lease is None or lease.token != fence.token:
            raise FenceLost(fence.tenant_id, fence.plan_id, fence.token)

    @staticmethod
    def _attempt_key(attempt: StepAttempt) -> _AttemptKey:
        return (attempt.tenant_id, attempt.plan_id, str(attempt.step_id), attempt.attempt)
