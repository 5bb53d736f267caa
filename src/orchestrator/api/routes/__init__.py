"""The API's routes, one module per concern; :data:`ROUTERS` lists them in document order."""

from __future__ import annotations

from fastapi import APIRouter

from orchestrator.api.routes.actions import router as actions_router
from orchestrator.api.routes.history import router as history_router
from orchestrator.api.routes.meta import router as meta_router
from orchestrator.api.routes.plans import router as plans_router
from orchestrator.api.routes.proposals import router as proposals_router

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    plans_router,
    actions_router,
    history_router,
    meta_router,
    proposals_router,
)
