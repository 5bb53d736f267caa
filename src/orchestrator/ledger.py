"""The plan ledger: append-only, hash-chained history of every plan.

Callers write :class:`LedgerDraft` values; the store assigns the per-plan
sequence number ``seq`` (1, 2, 3, ...) and chains the hashes atomically with the
write that the entries describe. Each :class:`LedgerEntry` carries the hash of
its predecessor (``prev_hash``; :data:`GENESIS_HASH` for the first) and its own
``hash``: SHA-256 over the canonical JSON of the entry without ``hash``. The plan
record keeps the ledger head (last ``seq`` and ``hash``), so deleting the newest
entries is detected as well as editing, deleting or reordering older ones.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

__all__ = [
    "GENESIS_HASH",
    "MAX_ENTRIES_PER_WRITE",
    "ChainProblem",
    "LedgerDraft",
    "LedgerEntry",
    "LedgerEvent",
    "LedgerHead",
    "chain_entries",
    "data_hash",
    "entry_hash",
    "rechained",
    "rechained_data",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of a plan's first ledger entry."""

MAX_ENTRIES_PER_WRITE = 25
"""Ledger entries one write may carry (keeps a DynamoDB transaction under 100 items)."""

_Ident = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]
_Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class LedgerEvent(enum.StrEnum):
    """What happened to the plan."""

    CREATED = "created"
    UPDATED = "updated"
    APPROVED = "approved"
    GATE_DECISION = "gate_decision"
    ACTIVATED = "activated"
    ACTIVATION_REJECTED = "activation_rejected"
    STEP_INTENT = "step_intent"
    STEP_OUTCOME = "step_outcome"
    STEP_APPROVED = "step_approved"
    RETRIED = "retried"
    SKIPPED = "skipped"
    PAUSED = "paused"
    RESUMED = "resumed"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"
    PROPOSAL = "proposal"
    PROPOSAL_REJECTED = "proposal_rejected"
    NOTE = "note"


class LedgerDraft(BaseModel):
    """A ledger entry as a caller writes it: the store adds seq and hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: AwareDatetime = Field(description="When it happened (normalised to UTC)")
    actor: str = Field(min_length=1, max_length=256, description="Who or what did it")
    event: LedgerEvent = Field(description="What happened")
    reason: str = Field(default="", max_length=4000, description="Why, in words")
    bundle_digest: str | None = Field(
        default=None, max_length=256, description="Policy bundle the decision was taken under"
    )
    document_versions: dict[str, int] = Field(
        default_factory=dict, description="Version of each policy document consulted"
    )
    step_id: uuid.UUID | None = Field(default=None, description="The step concerned, if any")
    attempt: int | None = Field(default=None, ge=1, description="The step attempt concerned")
    evidence: dict[str, JsonValue] = Field(
        default_factory=dict, description="Facts the decision rested on"
    )

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class LedgerEntry(LedgerDraft):
    """A stored ledger entry: a draft placed in its plan's hash chain."""

    tenant_id: _Ident
    plan_id: _Ident
    seq: int = Field(ge=1, description="Position in the plan's ledger: 1, 2, 3, ...")
    plan_version: int = Field(ge=1, description="Plan version once the entry was written")
    prev_hash: _Hash = Field(description="Hash of the previous entry (GENESIS_HASH for seq 1)")
    hash: _Hash = Field(description="SHA-256 of the canonical JSON of this entry without `hash`")

    def computed_hash(self) -> str:
        """The hash this entry's content should have."""
        return entry_hash(self)


@dataclass(frozen=True, slots=True)
class LedgerHead:
    """The newest entry of a plan's ledger: its seq and hash (0/genesis when empty)."""

    seq: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One tamper-evidence failure, located by plan and seq."""

    tenant_id: str
    plan_id: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"plan `{self.plan_id}` (tenant `{self.tenant_id}`)"
        if self.seq is not None:
            where += f" seq {self.seq}"
        return f"{where}: {self.message}"


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""The canonical JSON text of a value (what ``json.dumps`` gives with these options)."""

_make_encoder = getattr(json.encoder, "c_make_encoder", None)


def _canonical_text(data: dict[str, object]) -> str:
    """``_CANONICAL.encode(data)``: the same C encoder and options, without the Python layers.

    ``JSONEncoder.encode`` makes this very encoder for each call (with a fresh
    circular-reference record) when the C accelerator is there; it is made
    here directly. Without the accelerator the encoder itself is used.
    """
    if _make_encoder is None:  # pragma: no cover - CPython always has it
        return _CANONICAL.encode(data)
    encoder = _make_encoder(
        {},
        _CANONICAL.default,
        json.encoder.encode_basestring,
        None,
        _CANONICAL.key_separator,
        _CANONICAL.item_separator,
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    return "".join(encoder(data, 0))


def _digest(data: dict[str, object]) -> str:
    return hashlib.sha256(_canonical_text(data).encode("utf-8")).hexdigest()


def entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 (hex) over the canonical JSON of ``entry`` without its ``hash``.

    Canonical: JSON-mode values, keys sorted, no whitespace, UTF-8, and fields
    that hold their default left out, so that a field added later (with a
    default) does not change the hash of entries written before it existed.
    """
    return _digest(entry.model_dump(mode="json", exclude={"hash"}, exclude_defaults=True))


def rechained(entry: LedgerEntry, *, plan_version: int, prev_hash: str) -> LedgerEntry:
    """``entry`` with another ``plan_version`` and ``prev_hash``, and the hash that gives it.

    The same entry as ``model_copy`` with those two fields and then its
    :func:`entry_hash`, with one dump instead of two copies and a dump.
    """
    # neither field has a default, so both are always in the canonical form
    data = entry.model_dump(mode="json", exclude={"hash"}, exclude_defaults=True)
    data["plan_version"] = plan_version
    data["prev_hash"] = prev_hash
    return entry.model_copy(
        update={"plan_version": plan_version, "prev_hash": prev_hash, "hash": _digest(data)}
    )


_ENTRY_FIELDS = frozenset(LedgerEntry.model_fields)
_set_attr = object.__setattr__


def _entry(values: dict[str, object]) -> LedgerEntry:
    """A :class:`LedgerEntry` of already validated ``values`` (every field given)."""
    entry = LedgerEntry.__new__(LedgerEntry)
    _set_attr(entry, "__dict__", values)
    _set_attr(entry, "__pydantic_fields_set__", set(_ENTRY_FIELDS))
    _set_attr(entry, "__pydantic_extra__", None)
    _set_attr(entry, "__pydantic_private__", None)
    return entry


def _json_defaults() -> dict[str, object]:
    from pydantic_core import PydanticUndefined, to_jsonable_python

    out: dict[str, object] = {}
    for name, info in LedgerEntry.model_fields.items():
        if info.default is not PydanticUndefined or info.default_factory is not None:
            out[name] = to_jsonable_python(info.get_default(call_default_factory=True))
    return out


_JSON_DEFAULTS = _json_defaults()
"""Each defaulted field of an entry and its default, as JSON data."""


def data_hash(data: dict[str, object]) -> str:
    """:func:`entry_hash` of an entry given as JSON data (``model_dump(mode="json")``).

    The canonical form is the data without ``hash`` and without the fields
    that hold their default, as :func:`entry_hash` dumps it.
    """
    defaults = _JSON_DEFAULTS
    return _digest(
        {
            key: value
            for key, value in data.items()
            if key != "hash" and (key not in defaults or value != defaults[key])
        }
    )


def rechained_data(
    data: dict[str, object], *, plan_version: int, prev_hash: str
) -> dict[str, object]:
    """:func:`rechained` for an entry as JSON data (``model_dump(mode="json")``), as JSON data.

    ``data`` may lack ``prev_hash`` and ``hash`` (an entry placed but not chained yet).
    """
    out = {**data, "plan_version": plan_version, "prev_hash": prev_hash}
    out["hash"] = data_hash(out)
    return out


def chain_entries(
    tenant_id: str,
    plan_id: str,
    head: LedgerHead,
    drafts: Sequence[LedgerDraft],
    *,
    plan_version: int,
) -> list[LedgerEntry]:
    """Place ``drafts`` after ``head``: assign seq numbers and chain the hashes."""
    if len(drafts) > MAX_ENTRIES_PER_WRITE:
        raise ValueError(
            f"at most {MAX_ENTRIES_PER_WRITE} ledger entries per write, got {len(drafts)}"
        )
    entries: list[LedgerEntry] = []
    prev = head
    for draft in drafts:
        placed = {
            "tenant_id": tenant_id,
            "plan_id": plan_id,
            "seq": prev.seq + 1,
            "plan_version": plan_version,
            "prev_hash": prev.hash,
        }
        # the entry's canonical form is the draft's plus the placement fields,
        # none of which has a default: hash that, then build the entry once
        digest = _digest({**draft.model_dump(mode="json", exclude_defaults=True), **placed})
        if type(draft) is LedgerDraft:
            # A draft is validated when it is made and frozen, and the placement
            # fields are the store's own: the entry is built without validating
            # all of it again (what `model_validate` would build from them).
            entry = _entry({**draft.__dict__, **placed, "hash": digest})
        else:
            entry = LedgerEntry.model_validate({**draft.__dict__, **placed, "hash": digest})
        entries.append(entry)
        prev = LedgerHead(entry.seq, entry.hash)
    return entries


def verify_chain(
    entries: Sequence[LedgerEntry],
    *,
    head: LedgerHead | None = None,
    tenant_id: str | None = None,
    plan_id: str | None = None,
) -> list[ChainProblem]:
    """Check one plan's ledger, in stored order; an empty list means intact.

    Detects an edited entry (content no longer matches its hash, or the next
    entry's ``prev_hash`` no longer matches), a deleted entry (a gap in ``seq``,
    or a ledger shorter than the ``head`` the plan records), and reordered
    entries (``seq`` out of order). ``head`` is the plan's recorded ledger head;
    without it the newest entries could be removed unnoticed.
    """
    tenant = tenant_id or (entries[0].tenant_id if entries else "?")
    plan = plan_id or (entries[0].plan_id if entries else "?")
    problems: list[ChainProblem] = []

    def problem(seq: int | None, message: str) -> None:
        problems.append(ChainProblem(tenant, plan, seq, message))

    for entry in entries:
        if entry.tenant_id != tenant or entry.plan_id != plan:
            problem(entry.seq, f"entry belongs to plan `{entry.plan_id}` of `{entry.tenant_id}`")

    seqs = [e.seq for e in entries]
    seen: set[int] = set()
    for position, seq in enumerate(seqs, start=1):
        if seq in seen:
            problem(seq, "duplicate seq")
        seen.add(seq)
        if seq != position and sorted(seqs) == list(range(1, len(seqs) + 1)):
            problem(seq, f"stored at position {position}: entries were reordered")
    top = max(seqs, default=0)
    if head is not None:
        top = max(top, head.seq)
    for missing in sorted(set(range(1, top + 1)) - seen):
        problem(missing, "entry is missing: it was deleted")

    prev_hash = GENESIS_HASH
    for entry in entries:
        if entry.computed_hash() != entry.hash:
            problem(entry.seq, "content does not match its hash: the entry was edited")
        if entry.prev_hash != prev_hash:
            problem(
                entry.seq,
                "prev_hash does not match the entry before it: an entry was edited, "
                "deleted or reordered",
            )
        prev_hash = entry.hash

    if head is not None and entries:
        last = entries[-1]
        if head.seq == last.seq and head.hash != last.hash:
            problem(last.seq, "newest entry differs from the ledger head the plan records")
        elif head.seq < last.seq:
            problem(last.seq, f"ledger runs past the head the plan records (seq {head.seq})")
    return problems
