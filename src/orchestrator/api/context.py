"""The API's wiring: the one place its store, policy, service and clocks are put together."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.accounts import AccountFacts, DirectoryAccounts
from orchestrator.api.auth import Authenticator, authenticator_for
from orchestrator.api.idempotency import IdempotencyStore, open_idempotency_store
from orchestrator.api.settings import ApiSettings, SettingsError
from orchestrator.clock import Clock, SystemClock
from orchestrator.policy import PolicyRuntime
from orchestrator.ports import ManagedStore
from orchestrator.service import PlanService
from orchestrator.stores import open_store
from planpolicy import BundleError, load_bundle

__all__ = ["ApiContext", "build_context"]


@dataclass
class ApiContext:
    """What every request handler uses; built once per process."""

    settings: ApiSettings
    store: ManagedStore
    runtime: PolicyRuntime
    accounts: AccountFacts
    clock: Clock
    service: PlanService
    idempotency: IdempotencyStore
    authenticator: Authenticator

    def close(self) -> None:
        """Close the stores (the context is unusable afterwards)."""
        try:
            self.idempotency.close()
        finally:
            self.store.close()


def build_context(
    settings: ApiSettings,
    *,
    store: ManagedStore | None = None,
    accounts: AccountFacts | None = None,
    clock: Clock | None = None,
    idempotency: IdempotencyStore | None = None,
) -> ApiContext:
    """Compile the policy bundle and open the stores the settings name.

    Ports may be injected (tests, simulation); otherwise they come from the
    settings. The idempotency table is created if missing (unless
    ``settings.idempotency_init`` is off: on Lambda, where the stack made it).
    """
    store = store or open_store(settings.store_url)  # a bad URL fails here, before compiling
    try:
        try:
            bundle = load_bundle(list(settings.policy_paths))
        except BundleError as exc:
            shown = "; ".join(str(d) for d in exc.diagnostics[:5])
            raise SettingsError(f"the policy bundle does not compile: {shown}") from exc
        runtime = PolicyRuntime(bundle)
        idempotency = idempotency or open_idempotency_store(
            settings.resolved_idempotency_url,
            ttl=settings.idempotency_ttl,
            max_per_tenant=settings.idempotency_max_per_tenant,
        )
        if settings.idempotency_init:
            idempotency.init()
    except BaseException:
        store.close()
        raise
    clock = clock or SystemClock()
    accounts = accounts or DirectoryAccounts(settings.accounts_dir)
    return ApiContext(
        settings=settings,
        store=store,
        runtime=runtime,
        accounts=accounts,
        clock=clock,
        service=PlanService(store, runtime, accounts, clock),
        idempotency=idempotency,
        authenticator=authenticator_for(settings),
    )
