"""Configuration of the Plans API: one frozen value, read from the environment or the CLI.

Secrets never come from the command line: the JWT secret is read from the
environment (:data:`JWT_SECRET_ENV`) or a file. Everything else has a
command-line option in ``plan-orchestrator serve`` and an environment variable
for AWS Lambda, where there is no command line.

=============================  ==============================================
variable                       meaning
=============================  ==============================================
``PLANSTORE_URL``              plan store URL (``sqlite:///...``, ``dynamodb://...``)
``PLAN_API_JWT_SECRET``        HMAC secret of local HS256 tokens (32+ characters)
``PLAN_API_JWT_SECRET_FILE``   a file holding that secret instead
``PLAN_API_JWT_ISSUER``        required ``iss`` claim (optional)
``PLAN_API_JWT_AUDIENCE``      required ``aud`` claim (optional)
``PLAN_API_AUTH``              ``jwt`` (default) or ``gateway`` (claims from API Gateway)
``PLAN_API_POLICIES``          policy paths, separated by ``os.pathsep`` (default ``policies``,
                               ``plan_types``; falls back to ``PLANPOLICY_POLICIES``)
``PLAN_API_ACCOUNTS``          directory of account fact files (default ``accounts``;
                               falls back to ``PLANPOLICY_ACCOUNTS``)
``PLAN_API_IDEMPOTENCY_URL``   where Idempotency-Key results are kept (derived by default)
``PLAN_API_IDEMPOTENCY_INIT``  ``0`` to skip creating that table at start (it exists already)
=============================  ==============================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from orchestrator.stores import DEFAULT_STORE_URL, STORE_URL_ENV

__all__ = [
    "JWT_SECRET_ENV",
    "JWT_SECRET_FILE_ENV",
    "MIN_SECRET_LENGTH",
    "ApiSettings",
    "SettingsError",
    "default_idempotency_url",
]

JWT_SECRET_ENV: Final = "PLAN_API_JWT_SECRET"
JWT_SECRET_FILE_ENV: Final = "PLAN_API_JWT_SECRET_FILE"
MIN_SECRET_LENGTH: Final = 32
"""HS256 secrets shorter than this are refused (RFC 7518 asks for at least 256 bits)."""

AuthMode = Literal["jwt", "gateway"]


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


def default_idempotency_url(store_url: str) -> str:
    """Where Idempotency-Key results go when nothing else is configured.

    Beside a SQLite plan store, a sibling file (``plans.db`` -> ``plans.idempotency.db``);
    with DynamoDB, a table of the same prefix; with the memory store, memory.
    """
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)[1:]
        stem = Path(path)
        sibling = stem.with_name(f"{stem.stem}.idempotency{stem.suffix or '.db'}")
        return f"sqlite:///{sibling.as_posix()}"
    if scheme == "dynamodb":
        return f"dynamodb://{parts.netloc}" + (f"?{parts.query}" if parts.query else "")
    return "memory://"


@dataclass(frozen=True)
class ApiSettings:
    """Everything :func:`orchestrator.api.app.create_app` needs."""

    store_url: str = DEFAULT_STORE_URL
    policy_paths: tuple[str, ...] = ("policies", "plan_types")
    accounts_dir: str = "accounts"
    auth: AuthMode = "jwt"
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: timedelta = timedelta(seconds=30)
    tenant_claim: str = "tenant_id"
    roles_claim: str = "roles"
    idempotency_url: str | None = None
    idempotency_ttl: timedelta = timedelta(hours=24)
    idempotency_max_per_tenant: int = 10_000
    idempotency_init: bool = True
    max_body_bytes: int = 256 * 1024
    page: bool = True

    def __post_init__(self) -> None:
        if self.auth not in ("jwt", "gateway"):
            raise SettingsError(f"auth must be `jwt` or `gateway`, not `{self.auth}`")
        if self.auth == "jwt":
            if not self.jwt_secret:
                raise SettingsError(
                    f"no JWT secret: set ${JWT_SECRET_ENV} (or ${JWT_SECRET_FILE_ENV})"
                )
            if len(self.jwt_secret) < MIN_SECRET_LENGTH:
                raise SettingsError(
                    f"the JWT secret is too short: use at least {MIN_SECRET_LENGTH} characters"
                )
        if self.max_body_bytes < 1024:
            raise SettingsError("max_body_bytes must be at least 1024")
        if self.idempotency_max_per_tenant < 1:
            raise SettingsError("idempotency_max_per_tenant must be positive")

    @property
    def resolved_idempotency_url(self) -> str:
        """The configured idempotency URL, or the one derived from the store URL."""
        return self.idempotency_url or default_idempotency_url(self.store_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ApiSettings:
        """Settings from environment variables (see the module docstring), then ``overrides``."""
        env = os.environ if env is None else env
        secret = env.get(JWT_SECRET_ENV) or None
        secret_file = env.get(JWT_SECRET_FILE_ENV)
        if secret is None and secret_file:
            try:
                secret = Path(secret_file).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise SettingsError(
                    f"cannot read ${JWT_SECRET_FILE_ENV} `{secret_file}`: {exc.strerror}"
                ) from exc
        auth = overrides.pop("auth", None) or env.get("PLAN_API_AUTH", "jwt")
        policies = env.get("PLAN_API_POLICIES") or env.get("PLANPOLICY_POLICIES")
        values: dict[str, object] = {
            "store_url": env.get(STORE_URL_ENV, DEFAULT_STORE_URL),
            "policy_paths": tuple(p for p in policies.split(os.pathsep) if p)
            if policies
            else ("policies", "plan_types"),
            "accounts_dir": env.get("PLAN_API_ACCOUNTS")
            or env.get("PLANPOLICY_ACCOUNTS")
            or "accounts",
            "auth": auth,
            "jwt_secret": secret,
            "jwt_issuer": env.get("PLAN_API_JWT_ISSUER") or None,
            "jwt_audience": env.get("PLAN_API_JWT_AUDIENCE") or None,
            "idempotency_url": env.get("PLAN_API_IDEMPOTENCY_URL") or None,
            "idempotency_init": env.get("PLAN_API_IDEMPOTENCY_INIT", "1").strip().lower()
            not in ("0", "false", "no", "off"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
