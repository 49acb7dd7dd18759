"""Backup and restore of a whole installation (``python -m workbench backup FILE`` / ``restore FILE``).

One ``.tar.gz`` archive (written 0600: it holds the key and every conversation) with:

- ``manifest.json``: when, the migration the database was at, whether the key is inside;
- ``database.dump``: ``pg_dump --format=custom`` — one consistent snapshot (a single repeatable-read
  transaction), so a backup taken while workers and connectors run is consistent;
- ``media/``: the content-addressed media store (files are written whole and never changed, so a copy is
  consistent);
- ``sessions/``: WhatsApp sessions; each SQLite session is copied with SQLite's online backup, which gives a
  consistent copy while its connector writes to it;
- ``secret.key``: the Fernet key of secrets at rest, unless ``without_key`` — then the stored integration
  secrets, AI keys and e-mail passwords cannot be read after a restore elsewhere, and the command says so.

``pg_dump``/``pg_restore`` are the ones the embedded server (pgserver) ships, or those on the ``PATH`` when the
server is newer than them. Redis holds nothing to keep: it is rebuilt from PostgreSQL (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from workbench.base.clock import now
from workbench.base.errors import Conflict, InvalidInput, WorkbenchError
from workbench.store.config import get_settings
from workbench.store.db import normalize_url
from workbench.store.models import Workspace

FORMAT = 1
MEDIA_DIR = "media"
SESSIONS_DIR = "sessions"
KEY_FILE = "secret.key"
DUMP = "database.dump"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Result:
    """What a backup or restore did."""

    media_files: int
    session_files: int
    with_key: bool
    revision: str | None


def _libpq_url(url: str) -> str:
    """The URL as libpq tools read it (no SQLAlchemy driver suffix)."""
    return make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def _major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"\)\s*(\d+)", out).group(1))  # "pg_dump (PostgreSQL) 16.2"


def pg_tool(name: str, server_major: int) -> str:
    """The ``pg_dump``/``pg_restore`` to use: pgserver's, else the ``PATH``'s, whichever is at least as new as
    the server (an older ``pg_dump`` refuses a newer server)."""
    candidates = []
    with contextlib.suppress(ImportError):
        import pgserver

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    if shutil.which(name):
        candidates.append(shutil.which(name))
    usable = [c for c in candidates if Path(c).is_file() and _major(c) >= server_major]
    if not usable:
        raise InvalidInput(f"no {name} for PostgreSQL {server_major}", key="error.backup_tool", tool=name)
    return usable[0]


def _server(url: str) -> tuple[int, str | None, int]:
    """(server major version, migration revision, workspaces) of the database at ``url``."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            major = int(conn.scalar(text("SHOW server_version_num"))) // 10000
            has_tables = conn.scalar(text("SELECT to_regclass('public.alembic_version') IS NOT NULL"))
            revision = conn.scalar(text("SELECT version_num FROM alembic_version")) if has_tables else None
            workspaces = conn.scalar(select(func.count()).select_from(Workspace)) if has_tables else 0
    finally:
        engine.dispose()
    return major, revision, workspaces


def _run(command: list[str]) -> None:
    """Run pg_dump/pg_restore; a failure is a product error with the tool's last words (its URL argument, which
    may hold a password, is not repeated)."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["?"])[-1][:300]
        raise WorkbenchError(f"{Path(command[0]).name} failed", key="error.backup_failed",
                             tool=Path(command[0]).name, reason=reason)


def _copy_session(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite session file, even while its connector writes to it."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def backup(url: str, archive: Path, *, without_key: bool = False) -> Result:
    """Write the installation's backup to ``archive`` (replaced whole: a failed backup leaves no half file)."""
    data_dir = get_settings().data_dir.resolve()
    major, revision, _ = _server(url)
    archive = Path(archive).resolve()
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".backup-") as work:
        staging = Path(work)
        _run([pg_tool("pg_dump", major), "--format=custom", "--no-owner", "--no-privileges",
              f"--file={staging / DUMP}", _libpq_url(url)])
        sessions = data_dir / SESSIONS_DIR
        session_files = 0
        if sessions.is_dir():
            (staging / SESSIONS_DIR).mkdir()
            for path in sorted(sessions.iterdir()):
                if path.suffix == ".sqlite3":
                    _copy_session(path, staging / SESSIONS_DIR / path.name)
                elif path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
                    shutil.copy2(path, staging / SESSIONS_DIR / path.name)
                else:
                    continue
                session_files += 1
        key = None if without_key else _current_key(data_dir)
        manifest = {"format": FORMAT, "created_at": now().isoformat(), "revision": revision,
                    "with_key": key is not None}
        partial = staging / "archive.tar.gz"
        media_files = 0
        with tarfile.open(partial, "w:gz") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
            tar.add(staging / DUMP, DUMP)
            media = data_dir / MEDIA_DIR
            if media.is_dir():
                for path in sorted(media.rglob("*")):
                    if path.is_file():
                        tar.add(path, f"{MEDIA_DIR}/{path.relative_to(media)}")
                        media_files += 1
            if (staging / SESSIONS_DIR).is_dir():
                tar.add(staging / SESSIONS_DIR, SESSIONS_DIR)
            if key is not None:
                _add_bytes(tar, KEY_FILE, key)
        partial.chmod(0o600)
        os.replace(partial, archive)
    return Result(media_files, session_files, key is not None, revision)


def _current_key(data_dir: Path) -> bytes | None:
    settings = get_settings()
    if settings.secret_key:
        return settings.secret_key.encode()
    path = data_dir / KEY_FILE
    return path.read_bytes().strip() if path.exists() else None


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _installation_in_use(url: str, data_dir: Path) -> bool:
    _, _, workspaces = _server(url)
    media = data_dir / MEDIA_DIR
    return bool(workspaces) or (media.is_dir() and any(p.is_file() for p in media.rglob("*")))


def restore(url: str, archive: Path, *, force: bool = False) -> Result:
    """Bring back a backup into the installation (database at ``url``, the configured data dir).

    Raises:
        Conflict: the installation already has workspaces or media and ``force`` is not set.
        InvalidInput: the file is not one of our backups.
    """
    from workbench.store.migrations import upgrade_database

    data_dir = get_settings().data_dir.resolve()
    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise InvalidInput("not a backup", key="error.backup_file") from exc
    with tar, tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".restore-") as work:
        names = set(tar.getnames())
        if MANIFEST not in names or DUMP not in names:
            raise InvalidInput("not a backup", key="error.backup_file")
        manifest = json.loads(tar.extractfile(MANIFEST).read())
        if _installation_in_use(url, data_dir) and not force:
            raise Conflict("installation not empty", key="error.restore_not_empty")
        staging = Path(work)
        tar.extractall(staging, filter="data")  # refuses absolute paths, "..", links out of the directory
        major, _, _ = _server(url)
        engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        finally:
            engine.dispose()
        _run([pg_tool("pg_restore", major), "--no-owner", "--no-privileges", "--exit-on-error",
              f"--dbname={_libpq_url(url)}", str(staging / DUMP)])
        upgrade_database(url)  # a backup of an older version is brought up to this one
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        counts = {}
        for part in (MEDIA_DIR, SESSIONS_DIR):
            target = data_dir / part
            if target.exists():
                shutil.rmtree(target)
            source = staging / part
            if source.is_dir():
                shutil.copytree(source, target)
                counts[part] = sum(1 for p in target.rglob("*") if p.is_file())
        if (staging / KEY_FILE).exists():
            key_path = data_dir / KEY_FILE
            key_path.unlink(missing_ok=True)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write((staging / KEY_FILE).read_bytes())
    return Result(counts.get(MEDIA_DIR, 0), counts.get(SESSIONS_DIR, 0), bool(manifest.get("with_key")),
                  manifest.get("revision"))
