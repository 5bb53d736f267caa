"""``python -m orchestrator.api.token``: print a local Plans API token.

The token is an HS256 JWT signed with ``$PLAN_API_JWT_SECRET`` (the secret
``plan-orchestrator serve`` verifies with), carrying ``sub``, ``tenant_id``,
``roles`` and ``exp``::

    export PLAN_API_JWT_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    python -m orchestrator.api.token --tenant northwind --user dana --role revenue_director
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from orchestrator.api.auth import mint_token
from orchestrator.api.settings import JWT_SECRET_ENV, MIN_SECRET_LENGTH

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print one token; exit 2 when the secret is missing or too short."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.api.token",
        description=f"Mint a local Plans API token signed with ${JWT_SECRET_ENV}.",
    )
    parser.add_argument("--tenant", required=True, help="the caller's tenant id")
    parser.add_argument("--user", required=True, help="the caller's user id (the `sub` claim)")
    parser.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    parser.add_argument("--issuer", default=os.environ.get("PLAN_API_JWT_ISSUER"))
    parser.add_argument("--audience", default=os.environ.get("PLAN_API_JWT_AUDIENCE"))
    args = parser.parse_args(argv)
    secret = os.environ.get(JWT_SECRET_ENV, "")
    if len(secret) < MIN_SECRET_LENGTH:
        print(
            f"error: set ${JWT_SECRET_ENV} to a secret of {MIN_SECRET_LENGTH}+ characters",
            file=sys.stderr,
        )
        return 2
    print(
        mint_token(
            secret,
            tenant_id=args.tenant,
            user_id=args.user,
            roles=args.role,
            ttl_seconds=args.ttl,
            issuer=args.issuer,
            audience=args.audience,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
