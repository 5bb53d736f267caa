"""Idempotency-Key records in DynamoDB (the API on AWS Lambda).

One table, ``PREFIX`` + ``api-idempotency``, keyed by ``pk = tenant#key``. The
reservation is a conditional put (the conditional write is the lock); an
expired record counts as absent, and DynamoDB's TTL on ``ttl`` deletes it
later, which keeps the table bounded.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from orchestrator.api.idempotency import Begin, BeginOutcome, StoredResponse, _decide
from orchestrator.errors import InvalidStoreUrl, StoreError, StoreUnavailable

__all__ = ["TABLE", "DynamoDBIdempotencyStore", "table_definition"]

TABLE: Final = "api-idempotency"
TTL_ATTRIBUTE: Final = "ttl"


def table_definition(prefix: str = "") -> dict[str, Any]:
    """``CreateTable`` arguments of the table (infrastructure code can build it from these);
    DynamoDB's TTL goes on :data:`TTL_ATTRIBUTE`."""
    return {
        "TableName": f"{prefix}{TABLE}",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


class DynamoDBIdempotencyStore:
    """Records keyed by ``tenant#key`` with conditional writes and a TTL attribute."""

    def __init__(
        self,
        prefix: str = "",
        *,
        region: str | None = None,
        ttl: timedelta = timedelta(hours=24),
        client: Any = None,
    ) -> None:
        self.prefix = prefix
        self.table = f"{prefix}{TABLE}"
        self._ttl = ttl
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
                    "no AWS region: add `?region=...` to the URL or set AWS_REGION"
                ) from exc
        self._client = client

    def init(self) -> None:
        """Create the table with its TTL attribute if missing."""
        try:
            self._client.create_table(**table_definition(self.prefix))
            self._client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
            self._client.update_time_to_live(
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        except ClientError as exc:
            if _code(exc) != "ResourceInUseException":
                raise _mapped(exc) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB request failed: {exc}") from exc

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def begin(self, tenant_id: str, key: str, digest: str, now: datetime) -> Begin:
        pk = _pk(tenant_id, key)
        epoch = int(now.timestamp())
        item = {
            "pk": {"S": pk},
            "digest": {"S": digest},
            "created_at": {"N": str(now.timestamp())},
            "ttl": {"N": str(int((now + self._ttl).timestamp()))},
        }
        try:
            self._client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #ttl <= :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(epoch)}},
            )
            return Begin(BeginOutcome.NEW)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _mapped(exc) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB request failed: {exc}") from exc
        found = self._get(pk)
        if found is None:  # expired and deleted in between: try once more
            return self.begin(tenant_id, key, digest, now)
        response = None
        if "status" in found:
            response = StoredResponse(
                int(found["status"]["N"]),
                bytes(found["body"]["B"]) if "body" in found else b"",
                json.loads(found.get("headers", {}).get("S", "{}")),
            )
        created = datetime.fromtimestamp(float(found["created_at"]["N"]), UTC)

        def take_over() -> None:
            self._call(
                "update_item",
                TableName=self.table,
                Key={"pk": {"S": pk}},
                UpdateExpression="SET created_at = :now",
                ConditionExpression="digest = :digest AND attribute_not_exists(#status)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":now": {"N": str(now.timestamp())},
                    ":digest": {"S": digest},
                },
            )

        try:
            return _decide(found["digest"]["S"], response, created, digest, now, take_over)
        except _ConditionFailed:  # another retry took it over first
            return Begin(BeginOutcome.IN_PROGRESS)

    def finish(
        self, tenant_id: str, key: str, digest: str, response: StoredResponse, now: datetime
    ) -> None:
        # A lost condition means the key was taken over after expiry: the newer request
        # records its own result.
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "update_item",
                TableName=self.table,
                Key={"pk": {"S": _pk(tenant_id, key)}},
                UpdateExpression="SET #status = :status, body = :body, headers = :headers",
                ConditionExpression="digest = :digest",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"N": str(response.status)},
                    ":body": {"B": response.body},
                    ":headers": {"S": response.encode_headers()},
                    ":digest": {"S": digest},
                },
            )

    def release(self, tenant_id: str, key: str, digest: str) -> None:
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "delete_item",
                TableName=self.table,
                Key={"pk": {"S": _pk(tenant_id, key)}},
                ConditionExpression="digest = :digest AND attribute_not_exists(#status)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":digest": {"S": digest}},
            )

    def _get(self, pk: str) -> dict[str, Any] | None:
        result = self._call(
            "get_item", TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = result.get("Item")
        return item

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise _ConditionFailed() from exc
            raise _mapped(exc) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB request failed: {exc}") from exc


class _ConditionFailed(Exception):
    """A conditional write lost."""


def _pk(tenant_id: str, key: str) -> str:
    return f"{tenant_id}#{key}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _mapped(exc: ClientError) -> StoreError:
    code = _code(exc)
    if code in {"ProvisionedThroughputExceededException", "ThrottlingException"}:
        return StoreUnavailable(f"DynamoDB is busy ({code})")
    if code == "ResourceNotFoundException":
        return StoreError("the idempotency table does not exist: start the API once with init")
    return StoreError(f"DynamoDB error {code}")
