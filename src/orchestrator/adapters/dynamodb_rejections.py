"""Rejected proposals in DynamoDB: the rejection log of a ``dynamodb://`` store.

The records live in the store's own ledger table, ``{prefix}plan-ledger``
(keys ``pk`` string, ``seq`` number), under ``pk = REJ#{tenant}``. Plan
ledger partitions are ``P#{tenant}#{plan}``, so the two never share a
partition. Each tenant has its own hash chain: ``seq`` 1, 2, 3, ... and each
record's ``prev_hash`` is the hash of the tenant's record before it.

Writes are ``PutItem`` conditioned on ``attribute_not_exists(pk)`` only -- the
ledger table's role grants and resource policy allow ``PutItem`` and ``Query``
and deny updates and deletes, so the log is append-only on AWS as well. To
append, the newest record is read (a consistent ``Query``, newest first,
``Limit=1``) and the next ``seq`` is put conditionally; if another writer took
that ``seq`` the condition fails and the append reads again (a few times).

An item holds the record as JSON in ``record`` (the same JSON a JSON-lines
log writes) and its ``event``; :meth:`DynamoDBRejectionLog.verify` checks a
tenant's chain. The table itself is created by the plan store's ``init``.
"""

from __future__ import annotations

import random
import time
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
from pydantic import ValidationError

from orchestrator.adapters.dynamodb import LEDGER_TABLE
from orchestrator.errors import (
    InvalidStoreUrl,
    StoreError,
    StoreNotInitialized,
    StoreUnavailable,
)
from orchestrator.ledger import GENESIS_HASH, LedgerDraft
from orchestrator.proposal_log import RejectionRecord, _chained, _problems

__all__ = ["APPEND_ATTEMPTS", "PK_PREFIX", "DynamoDBRejectionLog", "rejection_pk"]

PK_PREFIX: Final = "REJ#"
"""Partition key prefix of rejection records (plan ledger partitions start with ``P#``)."""
APPEND_ATTEMPTS: Final = 8
"""How often an append reads the newest record and tries the next ``seq``."""

_BUSY: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def rejection_pk(tenant_id: str) -> str:
    """The ledger-table partition key of a tenant's rejection records."""
    return f"{PK_PREFIX}{tenant_id}"


class _SeqTaken(Exception):
    """The conditional put found the ``seq`` already written by another writer."""


class DynamoDBRejectionLog:
    """A :class:`~orchestrator.proposal_log.RejectionLog` in the ledger table, one chain per tenant.

    ``client`` may be injected (tests); otherwise one is created for ``region``
    with the standard credential and endpoint chain (``AWS_ENDPOINT_URL_DYNAMODB``).
    """

    def __init__(self, prefix: str = "", *, region: str | None = None, client: Any = None) -> None:
        self.prefix = prefix
        self.table = f"{prefix}{LEDGER_TABLE}"
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

    def append(
        self, draft: LedgerDraft, *, tenant_id: str, account_id: str, proposal_id: str
    ) -> RejectionRecord:
        """Record one rejection as the tenant's next record; returns it as placed in the chain.

        ``StoreUnavailable`` if other writers kept taking the next ``seq``.
        """
        delay = 0.01
        for _ in range(APPEND_ATTEMPTS):
            seq, prev = self._newest(tenant_id)
            record = _chained(draft, tenant_id, account_id, proposal_id, seq + 1, prev)
            try:
                self._put(record)
            except _SeqTaken:
                # another writer took this seq: back off a little, read again
                time.sleep(delay * (1 + random.random()))
                delay *= 2
                continue
            return record
        raise StoreUnavailable(
            f"rejection log of tenant `{tenant_id}`: other writers kept taking the next "
            "record; try again"
        )

    def records(self, tenant_id: str, *, limit: int = 100) -> list[RejectionRecord]:
        """The tenant's newest ``limit`` records, oldest first."""
        if limit <= 0:
            return []
        newest_first: list[RejectionRecord] = []
        kwargs: dict[str, Any] = self._query_args(tenant_id, forward=False)
        while len(newest_first) < limit:
            kwargs["Limit"] = limit - len(newest_first)
            response = self._call("query", **kwargs)
            newest_first += [self._record(item) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
            kwargs["ExclusiveStartKey"] = start
        return newest_first[::-1]

    def verify(self, tenant_id: str) -> list[str]:
        """Tamper-evidence problems of the tenant's chain (empty: intact)."""
        items: list[dict[str, Any]] = []
        kwargs = self._query_args(tenant_id, forward=True)
        while True:
            response = self._call("query", **kwargs)
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
            kwargs["ExclusiveStartKey"] = start
        problems: list[str] = []
        records: list[RejectionRecord] = []
        for position, item in enumerate(items, start=1):
            try:
                record = self._record(item)
            except StoreError as exc:
                return [f"record {position}: {exc.message}"]
            if str(record.seq) != item["seq"]["N"] or record.tenant_id != tenant_id:
                problems.append(f"record {position}: its key does not match its content: it moved")
            records.append(record)
        return problems + _problems(records)

    # -- helpers -------------------------------------------------------------

    def _query_args(self, tenant_id: str, *, forward: bool) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": rejection_pk(tenant_id)}},
            "ScanIndexForward": forward,
            "ConsistentRead": True,
        }

    def _newest(self, tenant_id: str) -> tuple[int, str]:
        """``seq`` and hash of the tenant's newest record (``0`` and the genesis hash if none)."""
        response = self._call("query", **self._query_args(tenant_id, forward=False), Limit=1)
        items = response.get("Items", [])
        if not items:
            return 0, GENESIS_HASH
        newest = self._record(items[0])
        return newest.seq, newest.hash

    def _put(self, record: RejectionRecord) -> None:
        self._call(
            "put_item",
            TableName=self.table,
            Item={
                "pk": {"S": rejection_pk(record.tenant_id)},
                "seq": {"N": str(record.seq)},
                "event": {"S": record.event.value},
                "record": {"S": record.model_dump_json(exclude_defaults=True)},
            },
            # append-only: a record is written once and never replaced
            ConditionExpression="attribute_not_exists(pk)",
        )

    @staticmethod
    def _record(item: dict[str, Any]) -> RejectionRecord:
        try:
            return RejectionRecord.model_validate_json(item["record"]["S"])
        except (KeyError, ValidationError) as exc:
            detail = str(exc).splitlines()[0]
            raise StoreError(f"a rejection record cannot be read: {detail}") from exc

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One client call with backend errors mapped to store errors."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            message = exc.response.get("Error", {}).get("Message", str(exc))
            if code == "ConditionalCheckFailedException":
                raise _SeqTaken() from exc
            if code == "ResourceNotFoundException":
                raise StoreNotInitialized(
                    f"DynamoDB table `{self.table}` not found: run `plan-orchestrator init`"
                ) from exc
            if code in _BUSY:
                raise StoreUnavailable(f"DynamoDB is busy ({code}): {message}") from exc
            raise StoreError(f"DynamoDB error {code}: {message}") from exc
        except NoCredentialsError as exc:
            raise StoreError("no AWS credentials found for the DynamoDB rejection log") from exc
        except EndpointConnectionError as exc:
            raise StoreUnavailable(f"cannot reach DynamoDB: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB request failed: {exc}") from exc
