"""Command line: ``python -m workbench up | workers | migrate``.

``worker`` and ``scheduler`` are the processes ``workers`` supervises (engine/worker/processes.py); they end
with the process that started them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from connector.files import PRIVATE_UMASK, private_dir
from workbench.launcher import QUEUES, ROLES


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m workbench", description="WhatsApp funnel workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the product (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL)")
    up.add_argument("--only", action="append", choices=ROLES,
                    help="run only this role (repeatable); default: all roles")
    workers = sub.add_parser("workers", help="run RQ workers with the scheduler (needs REDIS_URL, DATABASE_URL)")
    workers.add_argument("--count", type=int, default=2)
    sub.add_parser("worker", help="one RQ worker (started by `workers`)")
    sub.add_parser("scheduler", help="the RQ scheduler (started by `workers`)")
    sub.add_parser("calls", help="the outside calls pool: AI, webhooks, Odoo (started by `workers`)")
    sub.add_parser("migrate", help="apply database migrations to DATABASE_URL")
    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)  # every file and directory we (and the processes we start) create is the owner's only
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every initdb/pg_ctl output at INFO
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")

    if args.command == "up":
        from workbench.launcher import up as run_up
        from workbench.store.config import get_settings

        private_dir(get_settings().data_dir)  # made before this umask, an older data dir may be open to others

        return run_up(tuple(args.only) if args.only else ROLES)
    if args.command == "workers":
        from engine.worker import processes  # noqa: F401 - imported once here: every worker forked from us starts warm
        from workbench.launcher import workers as run_workers

        return run_workers(args.count, worker=lambda: _rq_process("worker"),
                           scheduler=lambda: _rq_process("scheduler"), calls=lambda: _rq_process("calls"))
    if args.command in ("worker", "scheduler", "calls"):
        return _rq_process(args.command)
    if args.command == "migrate":
        from workbench.store.config import get_settings
        from workbench.store.migrations import upgrade_database

        url = get_settings().database_url
        if not url:
            print("DATABASE_URL is not set", file=sys.stderr)
            return 2
        upgrade_database(url)
        return 0
    return 2


def _rq_process(command: str) -> int:
    import signal
    import threading

    from engine.worker import processes
    from workbench.store.config import get_settings

    processes.die_with_parent()
    url = get_settings().redis_url
    if not url:
        print("REDIS_URL is not set", file=sys.stderr)
        return 2
    if command == "worker":
        return processes.run_worker(url, QUEUES)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if command == "calls":
        import redis

        from engine.worker.calls import run_pool

        client = redis.Redis.from_url(url, health_check_interval=30)
        return run_pool(client, get_settings().outside_calls_concurrency, stop)
    return processes.run_scheduler(url, QUEUES, stop)


if __name__ == "__main__":
    sys.exit(main())
