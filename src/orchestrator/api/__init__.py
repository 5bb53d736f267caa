"""The Plans API and the Active Plans page (an ASGI app; FastAPI).

``create_app(settings)`` builds the app; ``plan-orchestrator serve`` runs it
with uvicorn and :mod:`orchestrator.api.lambda_api` on AWS Lambda. See
``docs/api.md`` for the endpoints, the error types and authentication.
"""

from __future__ import annotations

from orchestrator.api.app import create_app
from orchestrator.api.settings import ApiSettings, SettingsError

__all__ = ["ApiSettings", "SettingsError", "create_app"]
