"""Command line: ``python -m workbench up | workers | migrate | demo-data | notebooks | admin | doctor |
backup | restore | refresh-analytics``.

``worker`` and ``scheduler`` are the processes ``workers`` supervises (engine/worker/processes.py); they end
with the process that started them. ``workers`` also runs ``refresh-analytics`` every
``WORKBENCH_ANALYTICS_REFRESH_S``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from contextlib import contextmanager

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
    demo = sub.add_parser("demo-data", help="fill a workspace with demo history (contacts, conversations, funnel "
                                            "runs, agents) for the dashboards and notebooks")
    demo.add_argument("--contacts", type=int, default=2000, help="contacts to create (default 2000)")
    demo.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    demo.add_argument("--agents", type=int, default=8, help="demo agents to create (default 8)")
    demo.add_argument("--workspace", type=int, default=None, help="workspace id (default: the first one)")
    demo.add_argument("--seed", type=int, default=20261202)
    refresh = sub.add_parser("refresh-analytics", help="bring the dashboards' DuckDB copy up to date now, at a low "
                                                       "CPU priority (`workers` runs it every minute)")
    refresh.add_argument("--full", action="store_true", help="rebuild the copy from scratch")
    sub.add_parser("notebooks", help="open Jupyter Lab on notebooks/ with the product's data connected (further "
                                     "options go to jupyter lab)")
    _admin_parser(sub)
    sub.add_parser("doctor", help="check the installation: one line per check (ok/warn/fail); exit 1 on a failure")
    backup = sub.add_parser("backup", help="write the database, media, WhatsApp sessions and the secret key to FILE")
    backup.add_argument("file")
    backup.add_argument("--without-key", action="store_true",
                        help="leave the secret key out (stored secrets cannot be read after restoring elsewhere)")
    restore = sub.add_parser("restore", help="bring back a backup FILE into this (empty) installation")
    restore.add_argument("file")
    restore.add_argument("--force", action="store_true", help="replace an installation that is not empty")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "notebooks":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
    if args.command == "demo-data":
        return _demo_data(args)
    if args.command == "refresh-analytics":
        return _refresh_analytics(args.full)
    if args.command == "notebooks":
        return _notebooks(extra)
    if args.command == "admin":
        return _admin(args)
    if args.command == "doctor":
        return _doctor()
    if args.command in ("backup", "restore"):
        return _backup_or_restore(args)
    return 2


def _admin_parser(sub) -> None:
    admin = sub.add_parser("admin", help="manage workspaces and accounts from this machine (passwords are printed "
                                         "once, or read from standard input with --password-stdin)")
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    ws = cmds.add_parser("create-workspace", help="create a workspace with its first admin")
    ws.add_argument("name")
    ws.add_argument("--admin-email", required=True)
    ws.add_argument("--admin-name", default="")
    user = cmds.add_parser("create-user", help="create an account in a workspace")
    user.add_argument("email")
    user.add_argument("--name", default="")
    user.add_argument("--role", choices=("admin", "supervisor", "agent"), default="agent")
    user.add_argument("--workspace", type=int, required=True, help="workspace id (see `admin list`)")
    reset = cmds.add_parser("reset-password", help="give an account a new password and end its open logins")
    reset.add_argument("email")
    cmds.add_parser("list", help="list workspaces and their accounts with roles")
    off = cmds.add_parser("deactivate", help="deactivate an account (its conversations go back to a queue)")
    off.add_argument("email")
    off.add_argument("--workspace", type=int, default=None, help="workspace id (default: the account's first)")
    for command in (ws, user, reset):
        command.add_argument("--password-stdin", action="store_true",
                             help="read the password from standard input instead of generating one")


def _admin(args) -> int:
    """``admin …``: run one operator command; product errors print their pt-BR message and exit 1."""
    from workbench.base.errors import WorkbenchError
    from workbench.base.i18n import error_text
    from workbench.services import admin

    password = None
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    with _database():
        try:
            if args.admin_command == "create-workspace":
                workspace_id, creds = admin.create_workspace(args.name, args.admin_email, args.admin_name, password)
                print(f"workspace {workspace_id} created")
                _print_credentials(creds, password is None)
            elif args.admin_command == "create-user":
                _print_credentials(admin.create_user(args.workspace, args.email, args.name, args.role, password),
                                   password is None)
            elif args.admin_command == "reset-password":
                _print_credentials(admin.reset_password(args.email, password), password is None)
            elif args.admin_command == "deactivate":
                released = admin.deactivate(args.email, args.workspace)
                print(f"{args.email} deactivated; {released} conversation(s) went back to a queue")
            else:
                members = admin.accounts()
                for workspace_id, name in admin.workspace_names():
                    print(f"workspace {workspace_id}: {name}")
                    for a in (m for m in members if m.workspace_id == workspace_id):
                        print(f"  {a.email}  {a.name}  {a.role}{'' if a.active else '  (desativado)'}")
        except WorkbenchError as exc:
            print(error_text(exc), file=sys.stderr)
            return 1
    return 0


def _doctor() -> int:
    """``doctor``: print every health check; 1 when one failed. Embedded servers are looked at where ``up`` puts
    them (PostgreSQL is started for the look if it is not running; Redis is not)."""
    logging.getLogger().setLevel(logging.WARNING)  # the report is the output (alembic logs its plugins at INFO)
    from workbench.services import health
    from workbench.store.config import get_settings
    from workbench.store.embedded import EmbeddedRedis

    settings = get_settings()
    redis_url = settings.redis_url or EmbeddedRedis(settings.data_dir.resolve()).url()
    if settings.database_url:
        checks = health.run_checks(settings.database_url, redis_url)
    else:
        try:
            with _database(migrate=False) as url:
                checks = health.run_checks(url, redis_url)
        except Exception as exc:  # noqa: BLE001 - the embedded server could not start: that is the finding
            checks = [health.Check("postgresql", "fail", f"embedded server did not start ({type(exc).__name__})")]
    width = max(len(c.label) for c in checks)
    for check in checks:
        print(f"{check.status:<4}  {check.label:<{width}}  {check.detail}")
    return 1 if health.failed(checks) else 0


def _backup_or_restore(args) -> int:
    """``backup FILE`` / ``restore FILE``; product errors print their pt-BR message and exit 1."""
    logging.getLogger().setLevel(logging.WARNING)  # the summary is the output (alembic logs its plugins at INFO)
    from pathlib import Path

    from workbench.base.errors import WorkbenchError
    from workbench.base.i18n import error_text
    from workbench.services import backup

    with _database(migrate=False) as url:
        try:
            if args.command == "backup":
                done = backup.backup(url, Path(args.file), without_key=args.without_key)
                print(f"backup written to {args.file}: database at {done.revision}, {done.media_files} media "
                      f"file(s), {done.session_files} WhatsApp session file(s)")
                if not done.with_key:
                    print("without the secret key: integration secrets, AI keys and e-mail passwords in it can "
                          "only be read with this installation's key")
            else:
                done = backup.restore(url, Path(args.file), force=args.force)
                print(f"restored {args.file}: {done.media_files} media file(s), {done.session_files} WhatsApp "
                      f"session file(s)")
                if not done.with_key:
                    print("the backup holds no secret key: stored secrets decrypt only if this installation's key "
                          "is the one they were made with; otherwise enter them again in the panel's settings")
        except WorkbenchError as exc:
            print(error_text(exc), file=sys.stderr)
            return 1
    return 0


def _print_credentials(creds, generated: bool) -> None:
    print(f"  e-mail: {creds.email}")
    if generated:
        print(f"  senha:  {creds.password}   (shown only this once)")


@contextmanager
def _database(migrate: bool = True):
    """The product's database URL: ``DATABASE_URL``, else the embedded server of the data dir (attached to when
    ``up`` runs it, started and stopped here otherwise), with migrations applied unless ``migrate`` is False."""
    from workbench.store.config import get_settings

    settings = get_settings()
    pg = None
    url = settings.database_url
    if not url:
        from workbench.store.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(settings.data_dir.resolve())
        url = pg.start()
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
    try:
        if migrate:
            from workbench.store.migrations import upgrade_database  # alembic: a fifth of a second of imports

            upgrade_database(url)
        yield url
    finally:
        if pg is not None:
            from workbench.store import db

            db.dispose_engines()
            pg.stop()  # only when this command started it


def _refresh_analytics(full: bool) -> int:
    """``refresh-analytics``: one refresh of the dashboards' copy; prints what it did. It lowers its own CPU
    priority first: on a small machine the message path goes first, and the copy is a minute old anyway. A refresh
    already running on this data dir makes this one end at once (``skipped``)."""
    import json

    from workbench.analytics import store
    from workbench.store.outages import UNAVAILABLE

    os.nice(10)
    try:
        with _database(migrate=False):
            print(json.dumps(store.refresh(full=full, wait=False)))
    except UNAVAILABLE as exc:  # PostgreSQL away: one line, not a traceback each minute of an outage
        print(f"refresh-analytics: PostgreSQL unreachable ({type(exc).__name__}); nothing changed", file=sys.stderr)
        return 1
    return 0


def _demo_data(args) -> int:
    from workbench.analytics import demo, store
    from workbench.services.workspaces import ensure_demo_workspace

    with _database():
        creds = ensure_demo_workspace()
        if creds:
            print(f"Demo workspace created. Sign in with (shown only this once):\n  e-mail: {creds.email}\n"
                  f"  senha:  {creds.password}")
        sizes = demo.Sizes(contacts=args.contacts, days=args.days, agents=args.agents, seed=args.seed)
        workspace = args.workspace or _first_workspace()
        result = demo.generate(sizes, workspace)
        print(f"workspace {result['workspace']}: " + ", ".join(f"{n:,} {k}" for k, n in result["counts"].items()))
        refreshed = store.refresh(full=True)
        print(f"dashboards' copy refreshed in {refreshed['seconds']:.1f} s")
    return 0


def _first_workspace() -> int:
    from sqlalchemy import func, select

    from workbench.store.db import session_scope
    from workbench.store.models import Workspace

    with session_scope() as session:
        return session.scalar(select(func.min(Workspace.id)))


def _notebooks(jupyter_args: list[str]) -> int:
    import subprocess
    from pathlib import Path

    from workbench.store.config import get_settings

    root = Path(__file__).resolve().parent.parent
    with _database() as url:
        env = dict(os.environ)
        # the kernel runs in notebooks/: it finds the product through PYTHONPATH, the data through these two
        env.update(DATABASE_URL=url, WORKBENCH_DATA_DIR=str(get_settings().data_dir.resolve()),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")])))
        command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={root / 'notebooks'}", *jupyter_args]
        try:
            return subprocess.call(command, env=env)
        except KeyboardInterrupt:
            return 0


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
