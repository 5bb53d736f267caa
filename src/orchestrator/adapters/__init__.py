"""Plan store adapters: ``memory`` (tests, simulation), ``sqlite`` (embedded), ``dynamodb``.

Adapters translate the :class:`orchestrator.ports.PlanStore` contract to a
backend and hold no policy logic; shared encodings and checks are in
:mod:`orchestrator.adapters.codec`.
"""
