"""``emotivoice serve``, ``worker`` and ``keys``: the REST service, its workers and API keys."""

from __future__ import annotations

import argparse

from emotivoice.cli.common import EXIT_OK


def _service_settings(args: argparse.Namespace) -> object:
    from emotivoice.extras import require_extra

    require_extra("service", "The EmotiVoice service")
    from emotivoice.service.settings import load_settings

    overrides = {"home": args.home} if getattr(args, "home", None) else {}
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the REST API (and, in embedded mode, its worker processes)."""
    from emotivoice.service.server import serve

    settings = _service_settings(args)
    serve(settings, host=args.host, port=args.port, workers=args.workers)  # type: ignore[arg-type]
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run a job worker for the broker and database in the settings."""
    from emotivoice.service.server import run_worker

    run_worker(_service_settings(args), args.concurrency, args.pool)  # type: ignore[arg-type]
    return EXIT_OK


def cmd_keys(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Create, list and revoke API keys (stored hashed; a secret is shown once)."""
    from emotivoice.service.storage import Store

    store = Store(_service_settings(args))  # type: ignore[arg-type]
    if args.action == "create":
        key = store.create_key(args.name or "unnamed")
        print(f"id     {key.id}\nname   {key.name}\nsecret {key.secret}")
        print("Keep the secret now: it is stored only as a hash and cannot be shown again.")
    elif args.action == "list":
        for row in store.list_keys():
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            print(f"{row.id}  {row.prefix}…  {state:<18} {row.name}")
    else:
        if not args.name:
            parser.error("keys revoke needs the key id")
        store.revoke_key(args.name)
        print(f"revoked {args.name}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "serve",
        help="run the REST API with an embedded job queue and worker",
        description="Run the REST + WebSocket API and the web UI (http://HOST:PORT/). Other "
        "settings (keys, limits, database, broker) come from EMOTIVOICE_* environment "
        "variables; see docs/service.md.",
    )
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    s.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="embedded worker processes that run analyses (default: 1; none when "
        "EMOTIVOICE_EMBEDDED_WORKER=false and separate `emotivoice worker` processes run them)",
    )
    s.add_argument(
        "--home",
        default=None,
        help="data directory: uploads, results, database (default: $EMOTIVOICE_HOME, "
        "else ~/.local/share/emotivoice)",
    )
    s.set_defaults(func=cmd_serve)
    w = sub.add_parser("worker", help="run a job worker (scale-out: Redis broker)")
    w.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="jobs at once (default: EMOTIVOICE_WORKER_CONCURRENCY, else 1)",
    )
    w.add_argument(
        "--pool",
        default="prefork",
        choices=["prefork", "solo", "threads"],
        help="Celery pool (default: prefork)",
    )
    w.add_argument("--home", default=None, help="data directory (default: $EMOTIVOICE_HOME)")
    w.set_defaults(func=cmd_worker)
    k = sub.add_parser("keys", help="manage API keys: create NAME | list | revoke ID")
    k.add_argument("action", choices=["create", "list", "revoke"], help="what to do")
    k.add_argument("name", nargs="?", default=None, help="key name (create) or id (revoke)")
    k.add_argument("--home", default=None, help="data directory (default: $EMOTIVOICE_HOME)")
    k.set_defaults(func=cmd_keys)
