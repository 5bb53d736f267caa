"""The plan orchestrator service: the plan store, its ledger, and (later) the scheduler.

The service depends on :mod:`planpolicy`'s public API only. Storage is a port
(:class:`orchestrator.ports.PlanStore`) with memory, SQLite and DynamoDB
adapters; :func:`orchestrator.stores.open_store` picks one from a URL.
"""
