"""DynamoDB plan store (boto3): the production target.

Two tables, both defined by :func:`table_definitions` (the one place a
deployment stack imports them from):

``{prefix}revenue-plans`` (single-table style, ``pk``/``sk`` strings)
    ==================================  ==========  ===============================
    item                                ``sk``      ``pk``
    ==================================  ==========  ===============================
    plan (+ its lease and ledger head)  ``PLAN``    ``P#{tenant}#{plan_id}``
    step attempt                        ``A#{step_id}#{attempt:04d}`` (same ``pk`` as its plan)
    activation guard                    ``GUARD``   ``G#{tenant}#{account}#{plan_type}``
    schema version                      ``SCHEMA``  ``META``
    ==================================  ==========  ===============================

    Global secondary indexes over plan items only (the key attributes exist on
    nothing else): ``tenant-status`` (``gsi_tenant``, ``gsi_list`` =
    ``{status}#{created_at}#{plan_id}``), ``tenant-account`` (``gsi_account`` =
    ``{tenant}#{account}``, ``gsi_list``) and the sparse ``due`` index
    (``gsi_due_shard`` = ``DUE#{0..3}``, ``gsi_due`` = ``{next_due_at}#{tenant}#{plan}``),
    which holds only plans with a ``next_due_at``.

``{prefix}plan-ledger``
    ``pk`` = ``P#{tenant}#{plan_id}``, ``seq`` (number); the entry as JSON in
    ``entry``. Only ever written with ``attribute_not_exists(pk)``.

Every state change is a conditional write; a plan change and its ledger entries
(and guard, attempts) go in one ``TransactWriteItems``. The lease lives on the
plan item (``lease_owner``, ``lease_expires``, ``fence``) so that transactions
check the fence in the plan update's own condition.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from orchestrator.adapters import codec
from orchestrator.errors import (
    AlreadyExists,
    CorruptRecord,
    FenceLost,
    GuardConflict,
    InvalidCursor,
    InvalidStoreUrl,
    NotFound,
    StoreError,
    StoreNotInitialized,
    StoreUnavailable,
    VersionConflict,
)
from orchestrator.ledger import LedgerDraft, LedgerEntry, LedgerHead, chain_entries
from orchestrator.records import Fence, Page, PlanRef, StepAttempt
from planpolicy.plan import RevenuePlanV1

__all__ = [
    "DUE_SHARDS",
    "LEDGER_TABLE",
    "MAX_BATCH_WRITE",
    "MAX_TRANSACTION_ITEMS",
    "PLANS_TABLE",
    "SCHEMA_VERSION",
    "DynamoDBStore",
    "table_definitions",
]

PLANS_TABLE: Final = "revenue-plans"
LEDGER_TABLE: Final = "plan-ledger"
GSI_TENANT: Final = "tenant-status"
GSI_ACCOUNT: Final = "tenant-account"
GSI_DUE: Final = "due"
DUE_SHARDS: Final = 4
"""The due index is spread over this many partition keys to avoid one hot key."""
SCHEMA_VERSION: Final = 1
MAX_TRANSACTION_ITEMS: Final = 100
MAX_BATCH_WRITE: Final = 25
"""DynamoDB's ``BatchWriteItem`` limit; state changes never use unconditional batches."""

_PLAN_SK: Final = "PLAN"
_TRANSIENT_REASONS: Final = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
_RETRIES: Final = 8
_REMEMBERED_PLANS: Final = 1024
"""How many plans' bookkeeping (:class:`_PlanState`) a store keeps from its own reads and writes."""


def table_definitions(prefix: str = "") -> list[dict[str, Any]]:
    """``CreateTable`` keyword arguments of both tables, for ``init`` and the CDK stack."""
    doc_projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["doc"]}
    return [
        {
            "TableName": f"{prefix}{PLANS_TABLE}",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"}
                for name in (
                    "pk",
                    "sk",
                    "gsi_tenant",
                    "gsi_account",
                    "gsi_list",
                    "gsi_due_shard",
                    "gsi_due",
                )
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": GSI_TENANT,
                    "KeySchema": [
                        {"AttributeName": "gsi_tenant", "KeyType": "HASH"},
                        {"AttributeName": "gsi_list", "KeyType": "RANGE"},
                    ],
                    "Projection": doc_projection,
                },
                {
                    "IndexName": GSI_ACCOUNT,
                    "KeySchema": [
                        {"AttributeName": "gsi_account", "KeyType": "HASH"},
                        {"AttributeName": "gsi_list", "KeyType": "RANGE"},
                    ],
                    "Projection": doc_projection,
                },
                {
                    "IndexName": GSI_DUE,
                    "KeySchema": [
                        {"AttributeName": "gsi_due_shard", "KeyType": "HASH"},
                        {"AttributeName": "gsi_due", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        },
        {
            "TableName": f"{prefix}{LEDGER_TABLE}",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "seq", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "seq", "AttributeType": "N"},
            ],
        },
    ]


# -- keys and attribute values ----------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _plan_pk(tenant_id: str, plan_id: str) -> str:
    return f"P#{tenant_id}#{plan_id}"


def _guard_pk(tenant_id: str, account_id: str, plan_type: str) -> str:
    return f"G#{tenant_id}#{account_id}#{plan_type}"


def _attempt_sk(step_id: uuid.UUID | str, attempt: int) -> str:
    return f"A#{step_id}#{attempt:04d}"


def _plan_key(tenant_id: str, plan_id: str) -> dict[str, Any]:
    return {"pk": _s(_plan_pk(tenant_id, plan_id)), "sk": _s(_PLAN_SK)}


def _due_shard(tenant_id: str, plan_id: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}#{plan_id}".encode()).digest()
    return f"DUE#{digest[0] % DUE_SHARDS}"


def _content_attrs(plan: RevenuePlanV1, doc: str) -> dict[str, Any]:
    """Attributes that follow the plan's content (all but the due index keys)."""
    return {
        "status": _s(plan.status),
        "version": _n(plan.version),
        "doc": _s(doc),
        "gsi_list": _s(codec.list_key(plan)),
    }


def _due_key(plan: RevenuePlanV1) -> dict[str, str] | None:
    """The due index sort key; None keeps the plan out of the (sparse) index."""
    if plan.next_due_at is None:
        return None
    return _s(f"{codec.time_key(plan.next_due_at)}#{plan.tenant_id}#{plan.plan_id}")


def _head_attr(head: LedgerHead) -> dict[str, str]:
    return _s(f"{head.seq}:{head.hash}")


def _parse_head(text: str) -> LedgerHead:
    seq, _, digest = text.partition(":")
    return LedgerHead(int(seq), digest)


@dataclass(frozen=True, slots=True)
class _PlanState:
    """The plan item's bookkeeping, as a consistent read returns it."""

    version: int
    account_id: str
    plan_type: str
    head: LedgerHead
    holds_guard: bool
    fence: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> _PlanState:
        try:
            return cls(
                version=int(item["version"]["N"]),
                account_id=item["account_id"]["S"],
                plan_type=item["plan_type"]["S"],
                head=_parse_head(item["ledger_head"]["S"]),
                holds_guard=bool(item.get("holds_guard", {}).get("BOOL", False)),
                fence=int(item.get("fence", {}).get("N", "0")),
            )
        except (KeyError, ValueError) as exc:
            raise CorruptRecord(f"plan item lacks bookkeeping attribute {exc}") from exc


_STATE_PROJECTION: Final = "version, account_id, plan_type, ledger_head, holds_guard, fence"
_PLAN_PROJECTION: Final = f"doc, {_STATE_PROJECTION}"


class _Cancelled(Exception):
    """A transaction was cancelled by a failed condition; ``reasons`` align with its items."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return self.reasons[index].get("Code") not in (None, "None")

    def item(self, index: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.reasons[index].get("Item")
        return found


class DynamoDBStore:
    """A :class:`~orchestrator.ports.ManagedStore` on two DynamoDB tables.

    ``client`` may be injected (tests, benchmarks, sharing one client across
    stores); otherwise one is created for ``region`` with the standard
    credential and endpoint chain (``AWS_ENDPOINT_URL_DYNAMODB``).

    The store remembers the bookkeeping of the plans it last read or wrote
    (version, ledger head, guard flag: see :meth:`update_plan`), so that an
    update right after ``get_plan`` or another update is one request.
    """

    def __init__(self, prefix: str = "", *, region: str | None = None, client: Any = None) -> None:
        self.prefix = prefix
        self.plans_table = f"{prefix}{PLANS_TABLE}"
        self.ledger_table = f"{prefix}{LEDGER_TABLE}"
        self._owns_client = client is None
        if client is None:
            try:
                client = boto3.client(
                    "dynamodb",
                    region_name=region,
                    config=Config(retries={"mode": "standard", "max_attempts": 5}),
                )
            except NoRegionError as exc:
                raise InvalidStoreUrl(
                    "no AWS region: add `?region=...` to the store URL or set AWS_REGION"
                ) from exc
        self._client = client
        self._remembered: OrderedDict[tuple[str, str], _PlanState] = OrderedDict()
        self._remembered_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------

    def init(self) -> None:
        """Create missing tables and indexes, then record the schema version (idempotent)."""
        for definition in table_definitions(self.prefix):
            try:
                created = self._call("create_table", **definition)
                status = created["TableDescription"].get("TableStatus")
            except _TableExists:
                self._add_missing_indexes(definition)
                status = None
            if status != "ACTIVE":
                self._call("get_waiter_wait", TableName=definition["TableName"])
        try:
            self._call(
                "put_item",
                TableName=self.plans_table,
                Item={"pk": _s("META"), "sk": _s("SCHEMA"), "version": _n(SCHEMA_VERSION)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except _ConditionFailed:
            item = self._get({"pk": _s("META"), "sk": _s("SCHEMA")})
            version = int(item["version"]["N"]) if item else 0
            if version > SCHEMA_VERSION:
                raise StoreNotInitialized(
                    f"table `{self.plans_table}` is at schema version {version}, newer than "
                    f"this code supports ({SCHEMA_VERSION})"
                ) from None
            if version < SCHEMA_VERSION:  # the tables and indexes above are migrated
                # another process may have recorded it meanwhile: then the condition fails
                with contextlib.suppress(_ConditionFailed):
                    self._call(
                        "update_item",
                        TableName=self.plans_table,
                        Key={"pk": _s("META"), "sk": _s("SCHEMA")},
                        UpdateExpression="SET #v = :new",
                        ConditionExpression="#v = :old",
                        ExpressionAttributeNames={"#v": "version"},
                        ExpressionAttributeValues={":new": _n(SCHEMA_VERSION), ":old": _n(version)},
                    )

    def close(self) -> None:
        """Close the client's connections (an injected client stays open)."""
        if self._owns_client:
            self._client.close()

    # -- plans ---------------------------------------------------------------

    def create_plan(self, plan: RevenuePlanV1, entries: Sequence[LedgerDraft]) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.create_plan` (one transaction)."""
        codec.check_entries(entries, at_least=1)
        stored, doc = codec.stored_form(plan, version=1)
        chained = chain_entries(plan.tenant_id, plan.plan_id, LedgerHead(), entries, plan_version=1)
        item: dict[str, Any] = {
            **_plan_key(plan.tenant_id, plan.plan_id),
            "tenant_id": _s(plan.tenant_id),
            "plan_id": _s(plan.plan_id),
            "account_id": _s(plan.account_id),
            "plan_type": _s(plan.plan_type),
            "gsi_tenant": _s(plan.tenant_id),
            "gsi_account": _s(f"{plan.tenant_id}#{plan.account_id}"),
            "ledger_head": _head_attr(LedgerHead(chained[-1].seq, chained[-1].hash)),
            "holds_guard": {"BOOL": False},
            "fence": _n(0),
            # the shard never changes; the plan is in the due index while gsi_due exists
            "gsi_due_shard": _s(_due_shard(plan.tenant_id, plan.plan_id)),
            **_content_attrs(stored, doc),
        }
        due = _due_key(stored)
        if due is not None:
            item["gsi_due"] = due
        put = {
            "Put": {
                "TableName": self.plans_table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            self._transact([put, *self._ledger_puts(chained)])
        except _Cancelled as cancelled:
            if cancelled.failed(0):
                raise AlreadyExists(plan.tenant_id, plan.plan_id) from None
            raise CorruptRecord(
                f"plan `{plan.plan_id}` is new but its ledger already has entries"
            ) from None
        self._remember(
            plan.tenant_id,
            plan.plan_id,
            _PlanState(
                version=1,
                account_id=plan.account_id,
                plan_type=plan.plan_type,
                head=LedgerHead(chained[-1].seq, chained[-1].hash),
                holds_guard=False,
                fence=0,
            ),
        )
        return stored

    def get_plan(self, tenant_id: str, plan_id: str) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.get_plan`.

        The same read brings the plan's bookkeeping, which the store remembers
        for the next :meth:`update_plan` of this plan.
        """
        item = self._get(_plan_key(tenant_id, plan_id), projection=_PLAN_PROJECTION)
        if item is None:
            raise NotFound(tenant_id, plan_id)
        plan = codec.plan_from_json(item["doc"]["S"])
        try:
            self._remember(tenant_id, plan_id, _PlanState.from_item(item))
        except CorruptRecord:
            self._forget(tenant_id, plan_id)  # update_plan reads it again and says so
        return plan

    def list_plans(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RevenuePlanV1]:
        """See :meth:`orchestrator.ports.PlanStore.list_plans` (a GSI query).

        Global secondary indexes are eventually consistent on AWS: a plan written
        a moment ago may be missing from the list, or listed under its old status.
        """
        codec.check_limit(limit)
        scope = {"tenant": tenant_id, "status": status, "account": account_id}
        if account_id is None:
            index, hash_attr, hash_value = GSI_TENANT, "gsi_tenant", tenant_id
        else:
            index, hash_attr, hash_value = GSI_ACCOUNT, "gsi_account", f"{tenant_id}#{account_id}"
        condition = "#h = :h"
        values: dict[str, Any] = {":h": _s(hash_value)}
        names = {"#h": hash_attr}
        if status is not None:
            condition += " AND begins_with(#l, :status)"
            values[":status"] = _s(f"{status}#")
            names["#l"] = "gsi_list"
        start: dict[str, Any] | None = None
        if cursor:
            position = codec.decode_cursor(cursor, scope)
            if not (isinstance(position, list) and len(position) == 2):
                raise InvalidCursor()
            list_key, pk = (str(part) for part in position)
            start = {
                hash_attr: _s(hash_value),
                "gsi_list": _s(list_key),
                "pk": _s(pk),
                "sk": _s(_PLAN_SK),
            }
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            kwargs: dict[str, Any] = {
                "TableName": self.plans_table,
                "IndexName": index,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "Limit": limit + 1 - len(items),
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = self._call("query", **kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
        page = items[:limit]
        plans = [codec.plan_from_json(item["doc"]["S"]) for item in page]
        next_cursor = None
        if len(items) > limit:
            last = page[-1]
            next_cursor = codec.encode_cursor(scope, [last["gsi_list"]["S"], last["pk"]["S"]])
        return Page(items=plans, next_cursor=next_cursor)

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
        """See :meth:`orchestrator.ports.PlanStore.update_plan`.

        One ``TransactWriteItems``, preceded by a consistent read of the plan's
        bookkeeping (version, ledger head, guard flag, fence) unless this store
        read or wrote the plan at ``expected_version`` last (``get_plan``, an
        earlier update): then what it remembers is what it would read. The
        transaction's conditions decide either way: the plan update checks the
        version (and fence), so a stale memory fails it like a stale read
        would, and the ledger puts collide on their seq if an ``append_ledger``
        moved the head (the only bookkeeping that moves without a new version).
        Then it reads again and retries by itself.
        """
        codec.check_update_args(
            plan,
            entries=entries,
            fence=fence,
            activate_guard=activate_guard,
            release_guard=release_guard,
            attempts=attempts,
        )
        tenant_id, plan_id = plan.tenant_id, plan.plan_id
        new_version = expected_version + 1
        stored, doc = codec.stored_form(plan, version=new_version)
        remembered = self._recall(tenant_id, plan_id, expected_version)
        for _ in range(_RETRIES):
            from_memory = remembered is not None
            state = remembered if remembered is not None else self._state(tenant_id, plan_id)
            remembered = None  # a retry reads
            codec.check_stored_identity(plan_id, state.account_id, state.plan_type, plan)
            if not from_memory:  # a remembered fence may predate the caller's lease
                if fence is not None and state.fence != fence.token:
                    raise FenceLost(tenant_id, plan_id, fence.token)
                if state.version != expected_version:
                    raise VersionConflict(tenant_id, plan_id, expected_version, state.version)
            chained = chain_entries(
                tenant_id, plan_id, state.head, entries, plan_version=new_version
            )
            head = LedgerHead(chained[-1].seq, chained[-1].hash) if chained else state.head
            take = activate_guard and not state.holds_guard
            release = release_guard and state.holds_guard
            holds = (state.holds_guard or activate_guard) and not release
            items = [
                self._plan_update(
                    stored,
                    doc,
                    head=head if chained else None,
                    holds_guard=holds if holds != state.holds_guard else None,
                    expected=expected_version,
                    fence=fence,
                ),
            ]
            guard_key = {
                "pk": _s(_guard_pk(tenant_id, plan.account_id, plan.plan_type)),
                "sk": _s("GUARD"),
            }
            if take:
                items.append(self._guard_put(guard_key, plan))
            if release:
                items.append(self._guard_delete(guard_key, plan_id))
            first_attempt = len(items)
            items += [self._attempt_put(a, fence, must_exist=True) for a in attempts]
            items += self._ledger_puts(chained)
            try:
                self._transact(items)
            except _Cancelled as cancelled:
                self._forget(tenant_id, plan_id)
                self._raise_plan_failure(cancelled, plan, expected_version, fence)
                if take and cancelled.failed(1):
                    holder = (cancelled.item(1) or {}).get("holder", {}).get("S")
                    raise GuardConflict(
                        tenant_id, plan.account_id, plan.plan_type, holder
                    ) from None
                if release and cancelled.failed(1):
                    raise CorruptRecord(
                        f"plan `{plan_id}` holds the activation guard but the guard item "
                        "names another plan"
                    ) from None
                for offset, attempt in enumerate(attempts):
                    if cancelled.failed(first_attempt + offset):
                        raise NotFound(tenant_id, attempt.idempotency_key, "attempt") from None
                continue  # the ledger head moved under us: read again
            except BaseException:  # unknown whether it was written (a timeout, ...)
                self._forget(tenant_id, plan_id)
                raise
            self._remember(
                tenant_id,
                plan_id,
                _PlanState(
                    version=new_version,
                    account_id=state.account_id,
                    plan_type=state.plan_type,
                    head=head,
                    holds_guard=holds,
                    fence=fence.token if fence is not None else state.fence,
                ),
            )
            return stored
        raise StoreUnavailable(f"plan `{plan_id}`: the ledger kept moving; try again")

    def active_plan_for(self, tenant_id: str, account_id: str, plan_type: str) -> str | None:
        """See :meth:`orchestrator.ports.PlanStore.active_plan_for`."""
        item = self._get(
            {"pk": _s(_guard_pk(tenant_id, account_id, plan_type)), "sk": _s("GUARD")},
            projection="holder",
        )
        return item["holder"]["S"] if item else None

    def due_plans(self, now: datetime, *, limit: int = 100) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.PlanStore.due_plans`: one query per due-index shard."""
        codec.check_limit(limit)
        # '~' sorts after every character an id may contain, so this bound keeps
        # every entry whose time is at or before `now`.
        bound = f"{codec.time_key(now)}#~"
        found: list[str] = []
        for shard in range(DUE_SHARDS):
            start: dict[str, Any] | None = None
            taken = 0
            while taken < limit:
                kwargs: dict[str, Any] = {
                    "TableName": self.plans_table,
                    "IndexName": GSI_DUE,
                    "KeyConditionExpression": "#s = :s AND #d <= :bound",
                    "ExpressionAttributeNames": {"#s": "gsi_due_shard", "#d": "gsi_due"},
                    "ExpressionAttributeValues": {":s": _s(f"DUE#{shard}"), ":bound": _s(bound)},
                    "Limit": limit - taken,
                }
                if start is not None:
                    kwargs["ExclusiveStartKey"] = start
                response = self._call("query", **kwargs)
                keys = [item["gsi_due"]["S"] for item in response.get("Items", [])]
                found.extend(keys)
                taken += len(keys)
                start = response.get("LastEvaluatedKey")
                if start is None:
                    break
        refs = []
        for key in sorted(found)[:limit]:
            moment, tenant_id, plan_id = key.split("#", 2)
            refs.append(PlanRef(tenant_id, plan_id, codec.parse_time_key(moment)))
        return refs

    # -- leases and attempts -------------------------------------------------

    def acquire_lease(
        self, tenant_id: str, plan_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> Fence | None:
        """See :meth:`orchestrator.ports.PlanStore.acquire_lease` (one conditional update)."""
        expires = now + ttl
        try:
            response = self._call(
                "update_item",
                TableName=self.plans_table,
                Key=_plan_key(tenant_id, plan_id),
                UpdateExpression="SET #o = :o, #e = :e ADD #f :one",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(#o) OR #e <= :now OR #o = :o)"
                ),
                ExpressionAttributeNames={
                    "#o": "lease_owner",
                    "#e": "lease_expires",
                    "#f": "fence",
                },
                ExpressionAttributeValues={
                    ":o": _s(owner),
                    ":e": _s(codec.time_key(expires)),
                    ":now": _s(codec.time_key(now)),
                    ":one": _n(1),
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            if not failed.item:
                raise NotFound(tenant_id, plan_id) from None
            return None
        token = int(response["Attributes"]["fence"]["N"])
        return Fence(tenant_id, plan_id, owner, token, expires)

    def release_lease(self, fence: Fence) -> None:
        """See :meth:`orchestrator.ports.PlanStore.release_lease`."""
        try:
            self._call(
                "update_item",
                TableName=self.plans_table,
                Key=_plan_key(fence.tenant_id, fence.plan_id),
                UpdateExpression="REMOVE #o, #e",
                ConditionExpression="#f = :f",
                ExpressionAttributeNames={
                    "#o": "lease_owner",
                    "#e": "lease_expires",
                    "#f": "fence",
                },
                ExpressionAttributeValues={":f": _n(fence.token)},
            )
        except _ConditionFailed:
            return  # stale fence: the lease is someone else's now

    def put_attempt(self, attempt: StepAttempt, fence: Fence) -> bool:
        """See :meth:`orchestrator.ports.PlanStore.put_attempt` (one transaction)."""
        codec.check_fence_scope(fence, attempt.tenant_id, attempt.plan_id)
        items = [self._fence_check(fence), self._attempt_put(attempt, fence, must_exist=False)]
        try:
            self._transact(items)
        except _Cancelled as cancelled:
            if cancelled.failed(0):
                raise FenceLost(fence.tenant_id, fence.plan_id, fence.token) from None
            return False
        return True

    def get_attempt(
        self, tenant_id: str, plan_id: str, step_id: uuid.UUID, attempt: int
    ) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.get_attempt`."""
        item = self._get(
            {"pk": _s(_plan_pk(tenant_id, plan_id)), "sk": _s(_attempt_sk(step_id, attempt))},
            projection="doc",
        )
        if item is None:
            raise NotFound(tenant_id, f"{plan_id}:{step_id}:{attempt}", "attempt")
        return StepAttempt.model_validate_json(item["doc"]["S"])

    def update_attempt(self, attempt: StepAttempt, fence: Fence) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.update_attempt` (one transaction)."""
        codec.check_fence_scope(fence, attempt.tenant_id, attempt.plan_id)
        items = [self._fence_check(fence), self._attempt_put(attempt, fence, must_exist=True)]
        try:
            self._transact(items)
        except _Cancelled as cancelled:
            if cancelled.failed(0):
                raise FenceLost(fence.tenant_id, fence.plan_id, fence.token) from None
            raise NotFound(attempt.tenant_id, attempt.idempotency_key, "attempt") from None
        return codec.checked_attempt(attempt, fence=fence.token)

    def list_attempts(self, tenant_id: str, plan_id: str) -> list[StepAttempt]:
        """See :meth:`orchestrator.ports.PlanStore.list_attempts`."""
        items = self._query_all(
            TableName=self.plans_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :a)",
            ExpressionAttributeValues={":pk": _s(_plan_pk(tenant_id, plan_id)), ":a": _s("A#")},
            ConsistentRead=True,
        )
        return [StepAttempt.model_validate_json(item["doc"]["S"]) for item in items]

    # -- ledger --------------------------------------------------------------

    def ledger(self, tenant_id: str, plan_id: str) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.ledger`."""
        entries = self._ledger_entries(tenant_id, plan_id)
        if not entries and self._get(_plan_key(tenant_id, plan_id), projection="pk") is None:
            raise NotFound(tenant_id, plan_id)
        return entries

    def append_ledger(
        self,
        tenant_id: str,
        plan_id: str,
        entries: Sequence[LedgerDraft],
        *,
        fence: Fence | None = None,
    ) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.append_ledger` (a read and a transaction)."""
        codec.check_entries(entries)
        if fence is not None:
            codec.check_fence_scope(fence, tenant_id, plan_id)
        for _ in range(_RETRIES):
            state = self._state(tenant_id, plan_id)
            if fence is not None and state.fence != fence.token:
                raise FenceLost(tenant_id, plan_id, fence.token)
            chained = chain_entries(
                tenant_id, plan_id, state.head, entries, plan_version=state.version
            )
            if not chained:
                return []
            names = {"#h": "ledger_head"}
            values: dict[str, Any] = {
                ":h": _head_attr(LedgerHead(chained[-1].seq, chained[-1].hash))
            }
            condition = "attribute_exists(pk)"
            if fence is not None:
                condition += " AND #f = :f"
                names["#f"] = "fence"
                values[":f"] = _n(fence.token)
            head_update = {
                "Update": {
                    "TableName": self.plans_table,
                    "Key": _plan_key(tenant_id, plan_id),
                    "UpdateExpression": "SET #h = :h",
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            self._forget(tenant_id, plan_id)  # its head moves (or the write fails)
            try:
                self._transact([head_update, *self._ledger_puts(chained)])
            except _Cancelled as cancelled:
                if cancelled.failed(0):
                    if not cancelled.item(0):
                        raise NotFound(tenant_id, plan_id) from None
                    assert fence is not None  # the only other condition
                    raise FenceLost(tenant_id, plan_id, fence.token) from None
                continue  # another writer took the next seq: read the head again
            return chained
        raise StoreUnavailable(f"plan `{plan_id}`: the ledger kept moving; try again")

    # -- admin ---------------------------------------------------------------

    def scan_plans(self) -> Iterator[PlanRef]:
        """See :meth:`orchestrator.ports.StoreAdmin.scan_plans` (a full table scan)."""
        return iter(self._scan_refs(None))

    def find_plan(self, plan_id: str) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.StoreAdmin.find_plan` (a filtered scan)."""
        return self._scan_refs(plan_id)

    def ledger_snapshot(self, tenant_id: str, plan_id: str) -> tuple[LedgerHead, list[LedgerEntry]]:
        """See :meth:`orchestrator.ports.StoreAdmin.ledger_snapshot`.

        Reads the head, then the entries; if entries were appended in between,
        reads the head once more so that the two agree.
        """
        head = self._state(tenant_id, plan_id).head
        entries = self._ledger_entries(tenant_id, plan_id)
        if entries and entries[-1].seq > head.seq:
            head = self._state(tenant_id, plan_id).head
        return head, entries

    # -- request helpers -----------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One client call with backend errors mapped to store errors."""
        try:
            if operation == "get_waiter_wait":
                waiter = self._client.get_waiter("table_exists")
                return waiter.wait(WaiterConfig={"Delay": 2, "MaxAttempts": 90}, **kwargs)
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed(exc.response.get("Item")) from exc
            if code == "ResourceInUseException" and operation == "create_table":
                raise _TableExists() from exc
            if code == "TransactionCanceledException":
                raise _Cancelled(exc.response.get("CancellationReasons", [])) from exc
            raise self._mapped(code, exc) from exc
        except NoCredentialsError as exc:
            raise StoreError("no AWS credentials found for the DynamoDB store") from exc
        except EndpointConnectionError as exc:
            raise StoreUnavailable(f"cannot reach DynamoDB: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB request failed: {exc}") from exc

    def _mapped(self, code: str, exc: ClientError) -> StoreError:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code == "ResourceNotFoundException":
            return StoreNotInitialized(
                f"DynamoDB table `{self.plans_table}` or `{self.ledger_table}` not found: "
                "run `plan-orchestrator init`"
            )
        if code in {
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "InternalServerError",
            "ServiceUnavailable",
            "TransactionInProgressException",
        }:
            return StoreUnavailable(f"DynamoDB is busy ({code}): {message}")
        return StoreError(f"DynamoDB error {code}: {message}")

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """``TransactWriteItems``; retries transient cancellations, else raises ``_Cancelled``."""
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise StoreError(f"a transaction holds at most {MAX_TRANSACTION_ITEMS} items")
        delay = 0.02
        for _ in range(_RETRIES):
            try:
                self._call("transact_write_items", TransactItems=items)
                return
            except _Cancelled as cancelled:
                codes = {reason.get("Code") for reason in cancelled.reasons}
                if any("ResourceNotFound" in str(code) for code in codes):
                    raise self._mapped("ResourceNotFoundException", _missing()) from None
                if codes & _TRANSIENT_REASONS:
                    time.sleep(delay)  # not reading the clock: only backing off
                    delay *= 2
                    continue
                raise
        raise StoreUnavailable("DynamoDB transaction kept conflicting; try again")

    def _get(self, key: dict[str, Any], *, projection: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"TableName": self.plans_table, "Key": key, "ConsistentRead": True}
        if projection is not None:
            kwargs["ProjectionExpression"] = projection
        item: dict[str, Any] | None = self._call("get_item", **kwargs).get("Item")
        return item

    def _state(self, tenant_id: str, plan_id: str) -> _PlanState:
        item = self._get(_plan_key(tenant_id, plan_id), projection=_STATE_PROJECTION)
        if item is None:
            raise NotFound(tenant_id, plan_id)
        return _PlanState.from_item(item)

    def _remember(self, tenant_id: str, plan_id: str, state: _PlanState) -> None:
        with self._remembered_lock:
            self._remembered[(tenant_id, plan_id)] = state
            self._remembered.move_to_end((tenant_id, plan_id))
            if len(self._remembered) > _REMEMBERED_PLANS:
                self._remembered.popitem(last=False)

    def _forget(self, tenant_id: str, plan_id: str) -> None:
        with self._remembered_lock:
            self._remembered.pop((tenant_id, plan_id), None)

    def _recall(self, tenant_id: str, plan_id: str, version: int) -> _PlanState | None:
        """The remembered bookkeeping of the plan if it is at ``version``, else None."""
        with self._remembered_lock:
            state = self._remembered.get((tenant_id, plan_id))
        return state if state is not None and state.version == version else None

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            response = self._call("query", **kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None:
                return items
            kwargs["ExclusiveStartKey"] = start

    def _ledger_entries(self, tenant_id: str, plan_id: str) -> list[LedgerEntry]:
        items = self._query_all(
            TableName=self.ledger_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(_plan_pk(tenant_id, plan_id))},
            ConsistentRead=True,
        )
        return [codec.entry_from_json(item["entry"]["S"]) for item in items]

    def _scan_refs(self, plan_id: str | None) -> list[PlanRef]:
        condition = "sk = :plan"
        values: dict[str, Any] = {":plan": _s(_PLAN_SK)}
        if plan_id is not None:
            condition += " AND plan_id = :id"
            values[":id"] = _s(plan_id)
        refs: list[PlanRef] = []
        kwargs: dict[str, Any] = {
            "TableName": self.plans_table,
            "FilterExpression": condition,
            "ExpressionAttributeValues": values,
            "ProjectionExpression": "tenant_id, plan_id, gsi_due",
            "ConsistentRead": True,
        }
        while True:
            response = self._call("scan", **kwargs)
            for item in response.get("Items", []):
                due = item.get("gsi_due", {}).get("S")
                refs.append(
                    PlanRef(
                        item["tenant_id"]["S"],
                        item["plan_id"]["S"],
                        codec.parse_time_key(due.split("#", 1)[0]) if due else None,
                    )
                )
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
            kwargs["ExclusiveStartKey"] = start
        return sorted(refs, key=lambda ref: (ref.tenant_id, ref.plan_id))

    def _add_missing_indexes(self, definition: dict[str, Any]) -> None:
        """Forward migration: create GSIs the table lacks (one per UpdateTable call)."""
        wanted = definition.get("GlobalSecondaryIndexes", [])
        if not wanted:
            return
        table = self._call("describe_table", TableName=definition["TableName"])["Table"]
        present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
        for index in wanted:
            if index["IndexName"] in present:
                continue
            self._call(
                "update_table",
                TableName=definition["TableName"],
                AttributeDefinitions=definition["AttributeDefinitions"],
                GlobalSecondaryIndexUpdates=[{"Create": index}],
            )

    # -- transaction items ---------------------------------------------------

    def _plan_update(
        self,
        plan: RevenuePlanV1,
        doc: str,
        *,
        head: LedgerHead | None,
        holds_guard: bool | None,
        expected: int,
        fence: Fence | None,
    ) -> dict[str, Any]:
        """The conditional update of the plan item; None leaves an attribute as it is.

        The condition checks the version (and fence) only: a concurrent ledger
        append shows up as a ledger put colliding on its seq.
        """
        attrs = _content_attrs(plan, doc)
        if head is not None:
            attrs["ledger_head"] = _head_attr(head)
        if holds_guard is not None:
            attrs["holds_guard"] = {"BOOL": holds_guard}
        due = _due_key(plan)
        if due is not None:
            attrs["gsi_due"] = due
        names = {f"#a{i}": name for i, name in enumerate(attrs)}
        values = {f":a{i}": value for i, value in enumerate(attrs.values())}
        expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs)))
        if due is None:
            names["#dk"] = "gsi_due"
            expression += " REMOVE #dk"
        names["#v"] = "version"
        values[":ev"] = _n(expected)
        condition = "#v = :ev"
        if fence is not None:
            names["#f"] = "fence"
            values[":f"] = _n(fence.token)
            condition += " AND #f = :f"
        return {
            "Update": {
                "TableName": self.plans_table,
                "Key": _plan_key(plan.tenant_id, plan.plan_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _raise_plan_failure(
        self,
        cancelled: _Cancelled,
        plan: RevenuePlanV1,
        expected_version: int,
        fence: Fence | None,
    ) -> None:
        """Turn a failed plan-update condition into its store error (or return to retry)."""
        if not cancelled.failed(0):
            return
        old = cancelled.item(0)
        if not old:
            raise NotFound(plan.tenant_id, plan.plan_id) from None
        now = _PlanState.from_item(old)
        if fence is not None and now.fence != fence.token:
            raise FenceLost(plan.tenant_id, plan.plan_id, fence.token) from None
        if now.version != expected_version:
            raise VersionConflict(
                plan.tenant_id, plan.plan_id, expected_version, now.version
            ) from None
        raise StoreError(f"plan `{plan.plan_id}`: update refused for an unknown reason")

    def _guard_put(self, key: dict[str, Any], plan: RevenuePlanV1) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.plans_table,
                "Item": {
                    **key,
                    "holder": _s(plan.plan_id),
                    "tenant_id": _s(plan.tenant_id),
                    "account_id": _s(plan.account_id),
                    "plan_type": _s(plan.plan_type),
                },
                "ConditionExpression": "attribute_not_exists(pk) OR holder = :p",
                "ExpressionAttributeValues": {":p": _s(plan.plan_id)},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _guard_delete(self, key: dict[str, Any], plan_id: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.plans_table,
                "Key": key,
                "ConditionExpression": "attribute_not_exists(pk) OR holder = :p",
                "ExpressionAttributeValues": {":p": _s(plan_id)},
            }
        }

    def _fence_check(self, fence: Fence) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.plans_table,
                "Key": _plan_key(fence.tenant_id, fence.plan_id),
                "ConditionExpression": "#f = :f",
                "ExpressionAttributeNames": {"#f": "fence"},
                "ExpressionAttributeValues": {":f": _n(fence.token)},
            }
        }

    def _attempt_put(
        self, attempt: StepAttempt, fence: Fence | None, *, must_exist: bool
    ) -> dict[str, Any]:
        stamped = codec.checked_attempt(attempt, fence=fence.token if fence else attempt.fence)
        return {
            "Put": {
                "TableName": self.plans_table,
                "Item": {
                    "pk": _s(_plan_pk(attempt.tenant_id, attempt.plan_id)),
                    "sk": _s(_attempt_sk(attempt.step_id, attempt.attempt)),
                    "status": _s(attempt.status),
                    "doc": _s(stamped.model_dump_json()),
                },
                "ConditionExpression": (
                    "attribute_exists(pk)" if must_exist else "attribute_not_exists(pk)"
                ),
            }
        }

    def _ledger_puts(self, entries: Sequence[LedgerEntry]) -> list[dict[str, Any]]:
        return [
            {
                "Put": {
                    "TableName": self.ledger_table,
                    "Item": {
                        "pk": _s(_plan_pk(entry.tenant_id, entry.plan_id)),
                        "seq": _n(entry.seq),
                        "event": _s(entry.event.value),
                        "entry": _s(codec.entry_to_json(entry)),
                    },
                    # append-only: a ledger item is written once and never replaced
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for entry in entries
        ]


class _TableExists(Exception):
    """``CreateTable`` found the table already there."""


class _ConditionFailed(Exception):
    """A single conditional write failed; ``item`` is the old item if one was returned."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _error_code(exc: BaseException | None) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _missing() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": "table not found"}},
        "TransactWriteItems",
    )
