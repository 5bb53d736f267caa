"""Encodings and checks every store adapter shares.

Sortable time keys, the listing order, opaque cursors, plan (de)serialisation
and the argument checks of ``update_plan`` live here so that the adapters only
translate to their backend and cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from orchestrator.errors import CorruptRecord, InvalidCursor, InvalidUpdate
from orchestrator.ledger import MAX_ENTRIES_PER_WRITE, LedgerDraft, LedgerEntry
from orchestrator.records import Fence, StepAttempt
from planpolicy.plan import RevenuePlanV1, replaced

__all__ = [
    "MAX_PAGE_SIZE",
    "check_entries",
    "check_fence_scope",
    "check_identity",
    "check_limit",
    "check_stored_identity",
    "check_update_args",
    "checked_attempt",
    "decode_cursor",
    "encode_cursor",
    "entry_from_json",
    "entry_to_json",
    "list_key",
    "parse_time_key",
    "plan_from_json",
    "plan_to_json",
    "stored_form",
    "time_key",
]

MAX_PAGE_SIZE = 500
"""Largest ``limit`` a listing accepts."""


def time_key(moment: datetime) -> str:
    """A fixed-width UTC string whose text order is time order (microsecond precision)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the store only accepts timezone-aware times")
    # isoformat is C-fast; years before 1000 do not occur in plans
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time_key(key: str) -> datetime:
    """The datetime a :func:`time_key` string stands for."""
    return datetime.strptime(key, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def list_key(plan: RevenuePlanV1) -> str:
    """The listing order within a tenant: status, then creation time, then plan id."""
    return f"{plan.status}#{time_key(plan.created_at)}#{plan.plan_id}"


def _scope_digest(scope: dict[str, str | None]) -> str:
    text = json.dumps(scope, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def encode_cursor(scope: dict[str, str | None], position: Any) -> str:
    """An opaque cursor: ``position`` plus a digest of the query it belongs to."""
    raw = json.dumps({"q": _scope_digest(scope), "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, scope: dict[str, str | None]) -> Any:
    """The position inside ``cursor``; ``InvalidCursor`` if malformed or for another query."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(data, dict) or "p" not in data:
        raise InvalidCursor()
    if data.get("q") != _scope_digest(scope):
        raise InvalidCursor("the cursor belongs to another tenant or other filters")
    return data["p"]


def check_limit(limit: int) -> None:
    """Reject page sizes outside 1..MAX_PAGE_SIZE."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")


def stored_form(plan: RevenuePlanV1, *, version: int) -> tuple[RevenuePlanV1, str]:
    """The plan at ``version`` as it will be stored: re-validated, and its JSON.

    ``model_copy(update=...)`` skips validation, so a caller can hold a plan with
    wrong field types; the store refuses those instead of storing them.
    """
    try:
        doc = replaced(plan, {"version": version}).model_dump_json(warnings=False)
        return RevenuePlanV1.model_validate_json(doc), doc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidUpdate(
            f"plan `{plan.plan_id}` is not valid: `{where}`: {first['msg'].lower()}"
        ) from exc
    except PydanticSerializationError as exc:
        raise InvalidUpdate(f"plan `{plan.plan_id}` cannot be serialised: {exc}") from exc


def checked_attempt(attempt: StepAttempt, *, fence: int) -> StepAttempt:
    """The attempt re-validated and stamped with the fence token that writes it."""
    data = attempt.model_dump(warnings=False)
    data["fence"] = fence
    try:
        return StepAttempt.model_validate(data)
    except ValidationError as exc:
        raise InvalidUpdate(f"attempt `{attempt.idempotency_key}` is not valid: {exc}") from exc


def plan_to_json(plan: RevenuePlanV1) -> str:
    """The stored form of a plan."""
    return plan.model_dump_json()


def plan_from_json(text: str | bytes) -> RevenuePlanV1:
    """Decode a stored plan; ``CorruptRecord`` if it no longer validates."""
    try:
        return RevenuePlanV1.model_validate_json(text)
    except ValidationError as exc:
        raise CorruptRecord(f"stored plan does not decode: {exc.error_count()} errors") from exc


def entry_to_json(entry: LedgerEntry) -> str:
    """The stored form of a ledger entry."""
    return entry.model_dump_json()


def entry_from_json(text: str | bytes) -> LedgerEntry:
    """Decode a stored ledger entry; ``CorruptRecord`` if it no longer validates."""
    try:
        return LedgerEntry.model_validate_json(text)
    except ValidationError as exc:
        raise CorruptRecord(
            f"stored ledger entry does not decode: {exc.error_count()} errors"
        ) from exc


def check_identity(stored: RevenuePlanV1, new: RevenuePlanV1) -> None:
    """Refuse to change what keys the plan: its account and plan type."""
    for name in ("account_id", "plan_type"):
        if getattr(stored, name) != getattr(new, name):
            raise InvalidUpdate(f"plan `{new.plan_id}`: `{name}` cannot change")


def check_stored_identity(
    plan_id: str, account_id: str, plan_type: str, new: RevenuePlanV1
) -> None:
    """:func:`check_identity` against stored key attributes instead of a whole plan."""
    if account_id != new.account_id:
        raise InvalidUpdate(f"plan `{plan_id}`: `account_id` cannot change")
    if plan_type != new.plan_type:
        raise InvalidUpdate(f"plan `{plan_id}`: `plan_type` cannot change")


def check_entries(entries: Sequence[LedgerDraft], *, at_least: int = 0) -> None:
    """Bound the number of ledger entries one write carries."""
    if len(entries) > MAX_ENTRIES_PER_WRITE:
        raise InvalidUpdate(f"at most {MAX_ENTRIES_PER_WRITE} ledger entries per write")
    if len(entries) < at_least:
        raise InvalidUpdate("a new plan needs a ledger entry saying why it exists")


def check_fence_scope(fence: Fence, tenant_id: str, plan_id: str) -> None:
    """A fence only ever covers its own plan."""
    if fence.tenant_id != tenant_id or fence.plan_id != plan_id:
        raise InvalidUpdate(f"fence of plan `{fence.plan_id}` used for plan `{plan_id}`")


def check_update_args(
    plan: RevenuePlanV1,
    *,
    entries: Sequence[LedgerDraft],
    fence: Fence | None,
    activate_guard: bool,
    release_guard: bool,
    attempts: Sequence[StepAttempt],
) -> None:
    """Argument checks of ``update_plan`` that need no stored state."""
    check_entries(entries)
    if activate_guard and release_guard:
        raise InvalidUpdate("a write cannot both take and release the activation guard")
    if fence is not None:
        check_fence_scope(fence, plan.tenant_id, plan.plan_id)
    if attempts and fence is None:
        raise InvalidUpdate("attempt records are only written under a lease fence")
    if len(attempts) > MAX_ENTRIES_PER_WRITE:
        # with the plan, the guard and the entries this stays under DynamoDB's
        # 100 items per transaction
        raise InvalidUpdate(f"at most {MAX_ENTRIES_PER_WRITE} attempt records per write")
    for attempt in attempts:
        if attempt.tenant_id != plan.tenant_id or attempt.plan_id != plan.plan_id:
            raise InvalidUpdate(f"attempt of plan `{attempt.plan_id}` in plan `{plan.plan_id}`")
