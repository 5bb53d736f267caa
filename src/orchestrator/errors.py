"""Typed errors of the plan store.

Every adapter maps its backend's exceptions to these at the boundary
(``raise VersionConflict(...) from exc``), so callers handle one error shape
whatever the backend. Each error says whether retrying makes sense:
``retryable`` is true when the same operation may succeed if repeated (after
re-reading, for a version conflict), false when repeating it cannot help.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "CorruptRecord",
    "FenceLost",
    "GuardConflict",
    "InvalidCursor",
    "InvalidStoreUrl",
    "InvalidUpdate",
    "NotFound",
    "StoreError",
    "StoreNotInitialized",
    "StoreUnavailable",
    "VersionConflict",
]


class StoreError(Exception):
    """Base of every plan-store error; ``retryable`` says whether to try again."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    """The plan (or attempt) does not exist for this tenant.

    A plan of another tenant is reported exactly like a missing one.
    """

    def __init__(self, tenant_id: str, plan_id: str, what: str = "plan") -> None:
        super().__init__(f"{what} `{plan_id}` not found for tenant `{tenant_id}`")
        self.tenant_id = tenant_id
        self.plan_id = plan_id


class AlreadyExists(StoreError):
    """A plan with this id already exists for the tenant."""

    def __init__(self, tenant_id: str, plan_id: str) -> None:
        super().__init__(f"plan `{plan_id}` already exists for tenant `{tenant_id}`")
        self.tenant_id = tenant_id
        self.plan_id = plan_id


class VersionConflict(StoreError):
    """The plan changed since it was read; re-read it and decide again."""

    retryable = True

    def __init__(self, tenant_id: str, plan_id: str, expected: int, actual: int | None) -> None:
        found = "unknown" if actual is None else str(actual)
        super().__init__(
            f"plan `{plan_id}` is at version {found}, not the expected {expected}: "
            "re-read it and try again"
        )
        self.tenant_id = tenant_id
        self.plan_id = plan_id
        self.expected = expected
        self.actual = actual


class GuardConflict(StoreError):
    """Another plan is ACTIVE for the same (tenant, account, plan type).

    The conflict invariant rejects the activation; retrying cannot help until the
    holder ends. ``holder_plan_id`` names the plan that holds the guard.
    """

    def __init__(
        self, tenant_id: str, account_id: str, plan_type: str, holder_plan_id: str | None
    ) -> None:
        holder = f"`{holder_plan_id}`" if holder_plan_id else "another plan"
        super().__init__(
            f"{holder} is already active for account `{account_id}` and plan type "
            f"`{plan_type}` (tenant `{tenant_id}`)"
        )
        self.tenant_id = tenant_id
        self.account_id = account_id
        self.plan_type = plan_type
        self.holder_plan_id = holder_plan_id


class FenceLost(StoreError):
    """The caller's lease fence is stale: another worker took the plan over.

    Discard the work; never retry the write with the same fence.
    """

    def __init__(self, tenant_id: str, plan_id: str, token: int) -> None:
        super().__init__(f"fence {token} on plan `{plan_id}` is stale: another worker holds it")
        self.tenant_id = tenant_id
        self.plan_id = plan_id
        self.token = token


class InvalidUpdate(StoreError):
    """The write would change something a store never changes (identity, size limits)."""


class InvalidCursor(StoreError):
    """A pagination cursor is malformed or belongs to another query."""

    def __init__(self, detail: str = "malformed cursor") -> None:
        super().__init__(f"invalid cursor: {detail}")


class CorruptRecord(StoreError):
    """A stored record cannot be decoded (tampering or a bug)."""


class StoreUnavailable(StoreError):
    """The backend is busy, throttled or unreachable; retry with backoff."""

    retryable = True


class StoreNotInitialized(StoreError):
    """The database or tables do not exist, or have an unsupported schema."""


class InvalidStoreUrl(StoreError):
    """A store URL that ``open_store`` cannot use."""
