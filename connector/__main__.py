"""Command line: ``python -m connector run --instance N --transport sandbox`` and ``python -m connector supervise``.

Both read the Redis URL (``REDIS_URL``) and the log level (``WORKBENCH_LOG_LEVEL``) from the settings
(``workbench.store.config``); SIGTERM and SIGINT shut them down cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable

import redis

from connector.files import PRIVATE_UMASK
from connector.transport import TRANSPORTS
from workbench.store.config import get_settings


def _redis() -> redis.Redis:
    """A client whose threads wait for a free connection rather than fail (redis-py's default pool raises)."""
    from connector.relay import REDIS_CONNECTIONS

    url = get_settings().redis_url
    if not url:
        sys.exit("REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0).")
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=20,
                                                 health_check_interval=30)
    return redis.Redis(connection_pool=pool)


def _on_signals(stop: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def _run(args: argparse.Namespace) -> int:
    from connector.relay import Relay

    options = {"qr_ttl_s": args.qr_ttl} if args.qr_ttl else {}
    relay = Relay(_redis(), args.instance, args.transport, heartbeat_s=args.heartbeat, parent_pid=args.parent_pid,
                  transport_options=options)
    _on_signals(relay.stop)
    return relay.run()


def _supervise(args: argparse.Namespace) -> int:
    from connector.supervisor import Supervisor

    child_args = ["--heartbeat", str(args.child_heartbeat)] if args.child_heartbeat else []
    supervisor = Supervisor(
        _redis(), poll_s=args.poll, grace_s=args.grace, heartbeat_timeout_s=args.heartbeat_timeout,
        rss_cap_mb=args.rss_cap_mb, backoff_base_s=args.backoff_base, backoff_max_s=args.backoff_max,
        stable_s=args.stable, restart_budget=args.restart_budget, budget_window_s=args.budget_window,
        child_args=child_args,
    )
    _on_signals(supervisor.stop)
    supervisor.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m connector", description="WhatsApp connectors.")
    parser.add_argument("--log-level", default=get_settings().log_level)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the connector of one number")
    run.add_argument("--instance", type=int, required=True, help="instance id")
    run.add_argument("--transport", choices=sorted(TRANSPORTS), default="sandbox")
    run.add_argument("--heartbeat", type=float, default=2.0, help="seconds between heartbeats")
    run.add_argument("--parent-pid", type=int, help="exit when this process (the supervisor) is gone")
    run.add_argument("--qr-ttl", type=float, help="sandbox: seconds each QR code is valid (default 60)")
    run.set_defaults(func=_run)

    sup = commands.add_parser("supervise", help="keep one connector per running number")
    sup.add_argument("--poll", type=float, default=1.0, help="seconds between reconciliations")
    sup.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    sup.add_argument("--heartbeat-timeout", type=float, default=30.0, help="restart after this long without one")
    sup.add_argument("--rss-cap-mb", type=float, default=512.0, help="restart a connector above this RSS")
    sup.add_argument("--backoff-base", type=float, default=1.0, help="first restart delay (doubles)")
    sup.add_argument("--backoff-max", type=float, default=60.0, help="longest restart delay")
    sup.add_argument("--stable", type=float, default=60.0, help="uptime after which the back-off resets")
    sup.add_argument("--restart-budget", type=int, default=20, help="restarts allowed within the window")
    sup.add_argument("--budget-window", type=float, default=600.0, help="seconds of the restart budget window")
    sup.add_argument("--child-heartbeat", type=float, help="heartbeat interval passed to the connectors")
    sup.set_defaults(func=_supervise)

    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)  # session files, spool and media are the owner's only (WhatsApp's keys, messages)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
