"""Test fixtures: real PostgreSQL and Redis, cleaned around each test.

Embedded servers (pgserver + redis-server) in a temporary directory by default; with
``TEST_DATABASE_URL`` set, a fresh database is created on that server for the session (and dropped
after); with ``TEST_REDIS_URL`` set, that Redis database is flushed around each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, settings
from sqlalchemy import text

from connector.claims import CLAIMS_DIR
from connector.spool import SPOOL_DIR
from tests.factories import fresh_database
from tests.fake_llm import fake_llm  # noqa: F401 - the scripted OpenAI-compatible server fixture
from workbench.services import runs, workspace_settings
from workbench.store import bus, db
from workbench.store.config import get_settings

# Hypothesis profiles (``--hypothesis-profile=NAME``): "ci" by default, fixed and bounded (the same examples on
# every run, no example database written into the repository); "bench" for ``bench/fuzz.py``'s larger, random
# runs (``WORKBENCH_FUZZ_EXAMPLES`` examples per pure target). Fuzz tests scale these with ``tests.fuzzing.scaled``.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=500, derandomize=True, database=None, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("bench", parent=settings.get_profile("ci"), derandomize=False,
                          max_examples=int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "20000")))
settings.load_profile("ci")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start (or point at) PostgreSQL and Redis once per session and export their URLs."""
    from workbench.store.embedded import EmbeddedPostgres, EmbeddedRedis
    from workbench.store.migrations import upgrade_database

    data_dir = Path(tmp_path_factory.mktemp("wb"))
    stops = []
    pg_server = os.environ.get("TEST_DATABASE_URL")
    if not pg_server:
        # Outside pytest's temp dir: pgserver runs postgres as another user, and a concurrent pytest session
        # resets /tmp/pytest-of-<user> to 0700, cutting that user off.
        pg_dir = Path(f"/tmp/wbt-pg-{uuid.uuid4().hex[:8]}")
        pg = EmbeddedPostgres(pg_dir)
        pg_server = pg.start()
        stops.append(pg.stop)
        stops.append(lambda: shutil.rmtree(pg_dir, ignore_errors=True))
    database_url, drop = fresh_database(pg_server)
    stops.insert(0, drop)
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        # /tmp keeps the socket path short whatever pytest's basetemp is
        redis_dir = Path(f"/tmp/wbt-{uuid.uuid4().hex[:8]}")
        rs = EmbeddedRedis(redis_dir)
        redis_url = rs.start()
        stops.insert(0, lambda: shutil.rmtree(redis_dir, ignore_errors=True))
        stops.insert(0, rs.stop)
    upgrade_database(database_url)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "WORKBENCH_DATA_DIR": str(data_dir),
        "WORKBENCH_TYPING_MS_PER_CHAR": "0",
        "WORKBENCH_DRAIN_LINGER_MS": "0",
        "WORKBENCH_SEND_MIN_GAP_MS": "0",
        "WORKBENCH_SENDS_PER_MINUTE": "0",
        "WORKBENCH_SECRET_KEY": "",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield env
    finally:
        db.dispose_engines()
        bus.reset_clients()
        for stop in stops:
            stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@pytest.fixture
def settings_env() -> Iterator[Callable[..., None]]:
    """Set environment variables for one test, as ``set(WORKBENCH_X="1")``, and have ``get_settings`` read them;
    the environment and the settings are restored afterwards."""
    saved: dict[str, str | None] = {}

    def set_env(**values: str) -> None:
        for name, value in values.items():
            saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        get_settings.cache_clear()

    yield set_env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()


TABLES = None


@pytest.fixture
def engine(servers):
    """The product's engine on a database emptied before the test."""
    global TABLES
    eng = db.get_engine()
    with eng.begin() as conn:
        if TABLES is None:
            TABLES = [r[0] for r in conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))]
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    # per-process caches keyed by workspace id: ids restart at 1 in every test
    workspace_settings.clear_cache()
    runs.clear_cache()
    return eng


@pytest.fixture
def r(servers) -> redis_lib.Redis:
    """The product's Redis, flushed before the test, and the connectors' send claims (outbox ids start again) and
    spools and journals (a journal would publish an earlier test's events into the emptied Redis)."""
    client = bus.get_redis()
    client.flushdb()
    for files in (CLAIMS_DIR, SPOOL_DIR):
        shutil.rmtree(Path(servers["WORKBENCH_DATA_DIR"]) / files, ignore_errors=True)
    return client
