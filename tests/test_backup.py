"""`python -m workbench backup FILE` / `restore FILE`: a populated installation restored into an empty one has
the same rows, the same media files and secrets that still decrypt; a non-empty installation is refused."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connector.media import store_media
from tests.factories import fresh_database, inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from workbench.services import secrets
from workbench.store import crypto, db
from workbench.store.config import get_settings
from workbench.store.db import session_scope

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def table_digests(url: str) -> dict[str, str]:
    """Each table's rows, as an order-independent digest."""
    engine = create_engine(db.normalize_url(url))
    try:
        with engine.connect() as conn:
            tables = conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
            return {t: conn.scalar(text(f'SELECT count(*) || \':\' || coalesce(md5(string_agg(x::text, \'|\' '
                                        f'ORDER BY x::text)), \'\') FROM "{t}" x')) for t in tables}
    finally:
        engine.dispose()


def media_hashes(data_dir: Path) -> dict[str, str]:
    media = data_dir / "media"
    return {str(p.relative_to(media)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in media.rglob("*") if p.is_file()}


@pytest.fixture
def target(servers):
    """An empty installation: a new database and a data dir that does not exist yet."""
    url, drop = fresh_database(servers["DATABASE_URL"], prefix="wb_restore")
    data_dir = Path(f"/tmp/wbt-restore-{uuid.uuid4().hex[:8]}")
    env = dict(os.environ, DATABASE_URL=url, WORKBENCH_DATA_DIR=str(data_dir), WORKBENCH_SECRET_KEY="")
    yield env
    drop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_round_trip_keeps_rows_media_sessions_and_secrets(engine, r, servers, target, tmp_path, settings_env):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    secrets.set_secret(admin, "odoo_token", "segredo-do-odoo-42")
    source_dir = get_settings().data_dir
    photo = store_media(source_dir, b"\x89PNG\r\n\x1a\n" + os.urandom(64), "image/png", "foto.png")
    publish(inbound(inst, "5511977776666", "olá"), inbound(inst, "5511977776666", None, type="image", media=photo))
    run_jobs()
    sessions = source_dir / "sessions"
    sessions.mkdir(mode=0o700, exist_ok=True)
    live = sqlite3.connect(sessions / f"{inst}.sqlite3")  # a connector's session, open while the backup runs
    live.execute("CREATE TABLE IF NOT EXISTS keys (k TEXT)")
    live.execute("INSERT INTO keys VALUES ('device-key')")
    live.commit()
    archive = tmp_path / "backup.tar.gz"
    try:
        made = cli("backup", str(archive), env=dict(os.environ))
    finally:
        live.close()
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert "secret.key" in tarfile.open(archive).getnames()

    restored = cli("restore", str(archive), env=target)
    assert restored.returncode == 0, restored.stderr
    assert table_digests(target["DATABASE_URL"]) == table_digests(servers["DATABASE_URL"])
    new_dir = Path(target["WORKBENCH_DATA_DIR"])
    assert media_hashes(new_dir) == media_hashes(source_dir)
    copy = sqlite3.connect(new_dir / "sessions" / f"{inst}.sqlite3")
    assert copy.execute("SELECT k FROM keys").fetchall() == [("device-key",)]
    copy.close()
    # the restored installation reads its secrets with the restored key
    settings_env(DATABASE_URL=target["DATABASE_URL"], WORKBENCH_DATA_DIR=str(new_dir))
    crypto._fernet.cache_clear()
    try:
        with session_scope() as s:
            assert secrets.secret_value(s, ws, "odoo_token") == "segredo-do-odoo-42"
    finally:
        crypto._fernet.cache_clear()

    again = cli("restore", str(archive), env=target)
    assert again.returncode == 1 and "--force" in again.stderr
    forced = cli("restore", str(archive), "--force", env=target)
    assert forced.returncode == 0, forced.stderr


def test_without_key_says_so_and_a_bad_file_is_refused(engine, r, target, tmp_path):
    make_workspace()
    archive = tmp_path / "sem-chave.tar.gz"
    made = cli("backup", str(archive), "--without-key", env=dict(os.environ))
    assert made.returncode == 0, made.stderr
    assert "without the secret key" in made.stdout
    assert "secret.key" not in tarfile.open(archive).getnames()
    bogus = tmp_path / "nada.tar.gz"
    bogus.write_bytes(b"not an archive")
    refused = cli("restore", str(bogus), env=target)
    assert refused.returncode == 1 and "não é um backup" in refused.stderr


def test_embedded_installation_round_trip(tmp_path):
    """No DATABASE_URL: backup reads the data dir's embedded server; restore fills another data dir's."""
    dirs = [Path(f"/tmp/wbt-bk-{uuid.uuid4().hex[:8]}") for _ in range(2)]  # postgres runs as another user
    envs = []
    for d in dirs:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(WORKBENCH_DATA_DIR=str(d), WORKBENCH_SECRET_KEY="")
        envs.append(env)
    archive = tmp_path / "embutido.tar.gz"
    try:
        made = cli("admin", "create-workspace", "Embutida", "--admin-email", "dona@embutida.com", env=envs[0])
        assert made.returncode == 0, made.stderr
        assert cli("backup", str(archive), env=envs[0]).returncode == 0
        restored = cli("restore", str(archive), env=envs[1])
        assert restored.returncode == 0, restored.stderr
        listed = cli("admin", "list", env=envs[1])
        assert "Embutida" in listed.stdout and "dona@embutida.com" in listed.stdout
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
