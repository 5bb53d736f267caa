"""Where rejected proposals are recorded: an append-only, hash-chained log next to the store.

A rejected proposal has no plan, and the plan store's ledger only holds
entries of existing plans (``append_ledger`` of an unknown plan is
``NotFound``; a synthetic plan would be a plan). So rejections go to a
:class:`RejectionLog`:

- :class:`JsonlRejectionLog` -- one JSON object per line, appended under an
  exclusive file lock and fsync'd; each record carries ``seq``, the hash of the
  previous record and its own hash (SHA-256 over its canonical JSON without
  ``hash``), so an edited, deleted or reordered line is detected by
  :meth:`JsonlRejectionLog.verify`. For a SQLite store it lives next to the
  database file (:func:`rejection_log_for`).
- :class:`MemoryRejectionLog` -- the same, in memory (tests, ``memory://``).
- :class:`~orchestrator.adapters.dynamodb_rejections.DynamoDBRejectionLog` --
  for a ``dynamodb://`` store: the store's ledger table, one hash chain per
  tenant, written only with conditional ``PutItem``.

Records are :class:`RejectionRecord` values: a ledger entry (event
``proposal_rejected``) with the tenant, the account and the proposal id in
place of a plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Final, Protocol
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError

from orchestrator.ledger import GENESIS_HASH, LedgerDraft

__all__ = [
    "REJECTION_LOG_ENV",
    "JsonlRejectionLog",
    "MemoryRejectionLog",
    "RejectionLog",
    "RejectionRecord",
    "rejection_log_for",
]

REJECTION_LOG_ENV: Final = "PLANPOLICY_REJECTION_LOG"
"""Path of the rejection log (overrides the place derived from the store URL)."""

_Ident = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]


class RejectionRecord(LedgerDraft):
    """A rejected proposal as recorded: a ledger entry without a plan, in the log's chain."""

    tenant_id: _Ident
    account_id: _Ident
    proposal_id: _Ident
    seq: int = Field(ge=1, description="Position in the log: 1, 2, 3, ...")
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def computed_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the record without ``hash``."""
        data = self.model_dump(mode="json", exclude={"hash"}, exclude_defaults=True)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chained(
    draft: LedgerDraft, tenant_id: str, account_id: str, proposal_id: str, seq: int, prev: str
) -> RejectionRecord:
    record = RejectionRecord(
        **draft.model_dump(),
        tenant_id=tenant_id,
        account_id=account_id,
        proposal_id=proposal_id,
        seq=seq,
        prev_hash=prev,
        hash=GENESIS_HASH,
    )
    return record.model_copy(update={"hash": record.computed_hash()})


def _problems(records: Sequence[RejectionRecord]) -> list[str]:
    problems = []
    prev = GENESIS_HASH
    for position, record in enumerate(records, start=1):
        if record.seq != position:
            problems.append(f"record {position}: seq {record.seq}: a record was deleted or moved")
        if record.computed_hash() != record.hash:
            problems.append(f"record {position}: content does not match its hash: it was edited")
        if record.prev_hash != prev:
            problems.append(f"record {position}: prev_hash does not match the record before it")
        prev = record.hash
    return problems


class RejectionLog(Protocol):
    """Append-only records of rejected proposals, read per tenant."""

    def append(
        self, draft: LedgerDraft, *, tenant_id: str, account_id: str, proposal_id: str
    ) -> RejectionRecord:
        """Record one rejection durably; returns it as placed in the chain."""
        ...

    def records(self, tenant_id: str, *, limit: int = 100) -> list[RejectionRecord]:
        """The tenant's newest records, oldest first."""
        ...


class MemoryRejectionLog:
    """A rejection log in memory (tests and ``memory://`` stores)."""

    def __init__(self) -> None:
        self._records: list[RejectionRecord] = []
        self._lock = threading.Lock()

    def append(
        self, draft: LedgerDraft, *, tenant_id: str, account_id: str, proposal_id: str
    ) -> RejectionRecord:
        with self._lock:
            prev = self._records[-1].hash if self._records else GENESIS_HASH
            record = _chained(
                draft, tenant_id, account_id, proposal_id, len(self._records) + 1, prev
            )
            self._records.append(record)
            return record

    def records(self, tenant_id: str, *, limit: int = 100) -> list[RejectionRecord]:
        with self._lock:
            mine = [r for r in self._records if r.tenant_id == tenant_id]
        return mine[-limit:]

    def verify(self) -> list[str]:
        """Tamper-evidence problems of the whole log (empty: intact)."""
        with self._lock:
            return _problems(list(self._records))


class JsonlRejectionLog:
    """Rejection records as JSON lines in one file, hash-chained, appended under a file lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _last(handle: IO[str]) -> tuple[int, str]:
        seq, last = 0, GENESIS_HASH
        handle.seek(0)
        for line in handle:
            if line.strip():
                data = json.loads(line)
                seq, last = int(data["seq"]), str(data["hash"])
        return seq, last

    def append(
        self, draft: LedgerDraft, *, tenant_id: str, account_id: str, proposal_id: str
    ) -> RejectionRecord:
        with self._locked() as handle:
            seq, prev = self._last(handle)
            record = _chained(draft, tenant_id, account_id, proposal_id, seq + 1, prev)
            handle.seek(0, os.SEEK_END)
            handle.write(record.model_dump_json(exclude_defaults=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            return record

    def _read(self) -> list[RejectionRecord]:
        if not self.path.exists():
            return []
        out = []
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    out.append(RejectionRecord.model_validate_json(line))
        return out

    def records(self, tenant_id: str, *, limit: int = 100) -> list[RejectionRecord]:
        return [r for r in self._read() if r.tenant_id == tenant_id][-limit:]

    def verify(self) -> list[str]:
        """Tamper-evidence problems of the whole file (empty: intact)."""
        try:
            return _problems(self._read())
        except (ValidationError, ValueError) as exc:
            return [f"the log cannot be read: {str(exc).splitlines()[0]}"]


def rejection_log_for(store_url: str, path: str | None = None) -> RejectionLog:
    """The rejection log that goes with a store.

    ``path`` (or ``$PLANPOLICY_REJECTION_LOG``) wins; otherwise a SQLite store
    ``sqlite:///dir/plans.db`` keeps its log in ``dir/plans.db.rejections.jsonl``,
    a DynamoDB store ``dynamodb://PREFIX?region=...`` keeps it in its ledger
    table ``PREFIX`` + ``plan-ledger`` (partitions ``REJ#{tenant}``, see
    :mod:`orchestrator.adapters.dynamodb_rejections`), a ``memory://`` store
    keeps it in memory, and any other store keeps it in
    ``./proposal-rejections.jsonl``.
    """
    chosen = path or os.environ.get(REJECTION_LOG_ENV)
    if chosen:
        return JsonlRejectionLog(chosen)
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return MemoryRejectionLog()
    if scheme == "dynamodb":
        from orchestrator.adapters.dynamodb_rejections import DynamoDBRejectionLog
        from orchestrator.stores import dynamodb_target

        prefix, region = dynamodb_target(store_url)
        return DynamoDBRejectionLog(prefix, region=region)
    if scheme == "sqlite":
        db = unquote(parts.path)[1:]
        if db:
            return JsonlRejectionLog(f"{db}.rejections.jsonl")
    return JsonlRejectionLog("proposal-rejections.jsonl")
