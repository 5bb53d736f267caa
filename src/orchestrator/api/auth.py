"""Who is calling: the caller's tenant, user id and roles, from a verified token.

Two authenticators, one :class:`Caller`:

- :class:`JwtAuthenticator` (local and self-hosted): ``Authorization: Bearer``
  with an HS256 JWT signed with the configured secret. ``exp`` and ``sub`` are
  required; ``iss`` and ``aud`` are checked when configured.
- :class:`GatewayAuthenticator` (AWS Lambda behind API Gateway): the gateway's
  authorizer has already verified the token; its claims arrive in the proxy
  event at ``requestContext.authorizer.jwt.claims`` (JWT authorizer) or
  ``requestContext.authorizer.lambda`` (Lambda authorizer). Mangum hands the
  event to the app as ``scope["aws.event"]``.

The tenant always comes from the token, never from the request: a caller can
only ever name plans of their own tenant. Run ``python -m orchestrator.api.token``
to mint a local token (see ``--help``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import jwt

from orchestrator.api.settings import ApiSettings
from planpolicy import Actor

__all__ = [
    "Authenticator",
    "Caller",
    "GatewayAuthenticator",
    "JwtAuthenticator",
    "Unauthenticated",
    "authenticator_for",
    "mint_token",
]

_IDENT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_ROLE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_MAX_ROLES: Final = 32


class Unauthenticated(Exception):
    """No usable credentials; ``detail`` says what was wrong (never the token itself)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Caller:
    """The authenticated caller. ``tenant_id`` scopes every read and write."""

    tenant_id: str
    user_id: str
    roles: frozenset[str]
    human: bool = True

    @property
    def actor(self) -> Actor:
        """The caller as the engine's authority checks see them."""
        return Actor(self.user_id, self.roles, human=self.human)


class Authenticator(Protocol):
    """Turns request credentials into a :class:`Caller` or raises :class:`Unauthenticated`."""

    def authenticate(self, headers: Mapping[str, str], scope: Mapping[str, Any]) -> Caller: ...


def _roles(value: object) -> frozenset[str]:
    """Roles from a list, or from a string as gateways flatten lists (``"[a b]"``, ``"a,b"``)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text[1:-1].replace(",", " ").split()
            value = parsed
        else:
            value = text.replace(",", " ").split()
    if not isinstance(value, list | tuple):
        raise Unauthenticated("the roles claim must be a list of strings")
    if len(value) > _MAX_ROLES:
        raise Unauthenticated(f"the roles claim lists more than {_MAX_ROLES} roles")
    roles = set()
    for role in value:
        if not isinstance(role, str) or not _ROLE.match(role):
            raise Unauthenticated("the roles claim holds a value that is not a role name")
        roles.add(role)
    return frozenset(roles)


def caller_from_claims(claims: Mapping[str, Any], *, tenant_claim: str, roles_claim: str) -> Caller:
    """A :class:`Caller` from verified claims; :class:`Unauthenticated` if they are unusable."""
    tenant = claims.get(tenant_claim)
    if not isinstance(tenant, str) or not _IDENT.match(tenant):
        raise Unauthenticated(f"the token has no valid `{tenant_claim}` claim")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _IDENT.match(subject):
        raise Unauthenticated("the token has no valid `sub` claim")
    human = claims.get("human", True)
    if isinstance(human, str):  # gateways pass every claim as a string
        human = human.lower() != "false"
    return Caller(tenant, subject, _roles(claims.get(roles_claim)), human=bool(human))


class JwtAuthenticator:
    """HS256 bearer tokens signed with the configured secret."""

    def __init__(self, settings: ApiSettings) -> None:
        if not settings.jwt_secret:
            raise ValueError("JwtAuthenticator needs a JWT secret")
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway
        self._tenant_claim = settings.tenant_claim
        self._roles_claim = settings.roles_claim

    def authenticate(self, headers: Mapping[str, str], scope: Mapping[str, Any]) -> Caller:
        header = headers.get("authorization")
        if not header:
            raise Unauthenticated("no `Authorization: Bearer` token was sent")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the `Authorization` header is not a bearer token")
        required = ["exp", "sub"]
        if self._audience:
            required.append("aud")
        if self._issuer:
            required.append("iss")
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {_token_problem(exc)}") from exc
        return caller_from_claims(
            claims, tenant_claim=self._tenant_claim, roles_claim=self._roles_claim
        )


def _token_problem(exc: jwt.InvalidTokenError) -> str:
    """A short, lowercase description of why PyJWT refused a token (no token content)."""
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing `{exc.claim}` claim"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    return "rejected"


class GatewayAuthenticator:
    """Claims that API Gateway's authorizer verified, read from the Lambda proxy event."""

    def __init__(self, settings: ApiSettings) -> None:
        self._tenant_claim = settings.tenant_claim
        self._roles_claim = settings.roles_claim

    def authenticate(self, headers: Mapping[str, str], scope: Mapping[str, Any]) -> Caller:
        event = scope.get("aws.event")
        if not isinstance(event, Mapping):
            raise Unauthenticated("no API Gateway event: this app expects to run behind it")
        context = event.get("requestContext")
        authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
        claims: object = None
        if isinstance(authorizer, Mapping):
            jwt_part = authorizer.get("jwt")
            if isinstance(jwt_part, Mapping):
                claims = jwt_part.get("claims")
            if claims is None:
                claims = authorizer.get("lambda")
            if claims is None and "claims" in authorizer:  # REST API (v1) Cognito authorizer
                claims = authorizer.get("claims")
        if not isinstance(claims, Mapping):
            raise Unauthenticated("the API Gateway authorizer passed no claims")
        return caller_from_claims(
            claims, tenant_claim=self._tenant_claim, roles_claim=self._roles_claim
        )


def authenticator_for(settings: ApiSettings) -> Authenticator:
    """The authenticator the settings name."""
    if settings.auth == "gateway":
        return GatewayAuthenticator(settings)
    return JwtAuthenticator(settings)


def mint_token(
    secret: str,
    *,
    tenant_id: str,
    user_id: str,
    roles: Sequence[str] = (),
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A signed HS256 token for local use and tests."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "roles": list(roles),
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")
