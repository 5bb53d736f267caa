"""``plan-orchestrator serve``: the Plans API and the Active Plans page, optionally the poll loop.

The JWT secret comes from ``$PLAN_API_JWT_SECRET`` (or the file named by
``$PLAN_API_JWT_SECRET_FILE``), never from the command line. ``--port 0``
picks a free port; the first line printed says where the API listens.
"""

from __future__ import annotations

import argparse
import socket
import sys
from datetime import timedelta

from orchestrator.commands.options import add_store_option

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` verb."""
    parser = subparsers.add_parser(
        "serve",
        help="run the Plans API and the Active Plans page (and optionally the poll loop)",
        description=(
            "Serve the Plans API (/v1), its OpenAPI document (/openapi.json) and the Active "
            "Plans page (/ui/). Callers authenticate with HS256 tokens signed with "
            "$PLAN_API_JWT_SECRET."
        ),
    )
    add_store_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (default 8000)"
    )
    parser.add_argument(
        "--policies",
        metavar="PATH",
        action="append",
        help="policy file or directory (repeatable; default: policies and plan_types)",
    )
    parser.add_argument(
        "--accounts",
        metavar="DIR",
        help="directory of account facts, <account_id>.yaml (default: accounts)",
    )
    parser.add_argument(
        "--idempotency",
        metavar="URL",
        help="where Idempotency-Key results are kept (default: beside the plan store)",
    )
    parser.add_argument(
        "--init", action="store_true", help="create the store's tables first if missing"
    )
    parser.add_argument(
        "--with-scheduler",
        action="store_true",
        help="also run the poll loop in this process (needs --executor)",
    )
    parser.add_argument(
        "--executor",
        metavar="URL",
        help="the poll loop's action executor: the execution service's URL, or `memory` "
        "for a local dry run (default: $PLANPOLICY_EXECUTOR_URL)",
    )
    parser.add_argument(
        "--interval",
        metavar="S",
        type=float,
        default=60.0,
        help="seconds between scheduler ticks (default 60)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
    )
    parser.set_defaults(run=run)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # protocol says TCP; without it, keep-alive responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 on bad settings, 3 on store errors.

    On SIGINT or SIGTERM uvicorn shuts down gracefully and then re-raises the
    signal, so the exit status is that of the signal (e.g. -15 for SIGTERM).
    """
    if args.with_scheduler and args.interval <= 0:
        print("plan-orchestrator: error: --interval must be positive", file=sys.stderr)
        return 2

    import uvicorn

    from orchestrator.api.app import create_app
    from orchestrator.api.context import build_context
    from orchestrator.api.poller import Poller
    from orchestrator.api.settings import ApiSettings, SettingsError
    from orchestrator.wiring import WiringError, build_executor, default_worker_id

    try:
        settings = ApiSettings.from_env(
            store_url=args.store,
            policy_paths=tuple(args.policies) if args.policies else None,
            accounts_dir=args.accounts,
            idempotency_url=args.idempotency,
        )
        context = build_context(settings)
    except SettingsError as exc:
        print(f"plan-orchestrator: error: {exc}", file=sys.stderr)
        return 2
    poller = None
    sock = None
    try:
        if args.init:
            context.store.init()
        context.store.list_plans("-", limit=1)  # fail now, not on the first request
        try:
            sock = _listen(args.host, args.port)
        except OSError as exc:
            print(
                f"plan-orchestrator: error: cannot listen on {args.host}:{args.port}: "
                f"{exc.strerror}",
                file=sys.stderr,
            )
            return 2
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"serving the Plans API on http://{shown}:{port}/ (page: /ui/)", flush=True)
        if args.with_scheduler:
            try:
                executor = build_executor(args.executor, context.clock)
            except WiringError as exc:
                print(f"plan-orchestrator: error: {exc}", file=sys.stderr)
                return 2
            poller = Poller(
                context,
                executor,
                interval=timedelta(seconds=args.interval),
                worker_id=default_worker_id(),
            )
            poller.start()
        # uvicorn re-raises SIGINT/SIGTERM once it has shut down, so the app's shutdown
        # (not the `finally` below) is where the poll loop stops and the stores close.
        shutdown = [poller.stop] if poller is not None else []
        config = uvicorn.Config(
            create_app(settings, context=context, on_shutdown=[*shutdown, context.close]),
            log_level=args.log_level,
            access_log=args.access_log,
            lifespan="on",
            timeout_graceful_shutdown=10,
            server_header=False,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if poller is not None:
            poller.stop()
        if sock is not None:
            sock.close()
        context.close()
    return 0
