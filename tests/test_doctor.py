"""`python -m workbench doctor` and Saúde do sistema: a healthy installation passes; each broken condition fails
its own line (Redis down, a pending migration, a wrong secret key, a data dir open to others)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from rq import Worker

from engine.worker.processes import LeasedScheduler
from tests.factories import fresh_database, make_actor, make_workspace
from workbench.base.errors import PermissionDenied
from workbench.launcher import QUEUES
from workbench.services import health, secrets
from workbench.store.config import get_settings
from workbench.store.migrations import upgrade_database

ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT = "redis://127.0.0.1:1/0"


def by_name(checks: list[health.Check]) -> dict[str, health.Check]:
    return {c.name: c for c in checks}


@pytest.fixture
def healthy(engine, r):
    """A populated installation with a worker and the scheduler alive and one stored secret."""
    ws = make_workspace()
    admin = make_actor(ws)
    secrets.set_secret(admin, "webhook_token", "segredo-guardado-123")
    worker = Worker(list(QUEUES), connection=r, name="doctor-test-worker")
    worker.register_birth()
    scheduler = LeasedScheduler(list(QUEUES), connection=r, name="doctor-test-scheduler")
    scheduler.hold()
    yield admin
    worker.register_death()
    scheduler.release_locks()


def test_a_healthy_installation_has_no_failure(healthy):
    checks = health.run_checks()
    assert not health.failed(checks), checks
    names = by_name(checks)
    assert names["postgresql"].detail.startswith("PostgreSQL ")
    assert names["redis"].detail.startswith("Redis ")
    assert names["secret key"].status == "ok" and "1 stored secret" in names["secret key"].detail
    assert names["workers"].status == "ok" and names["scheduler"].status == "ok"
    assert not health.failed(health.system_health(healthy))


def test_only_admins_see_the_system_health(healthy):
    supervisor = make_actor(healthy.workspace_id, role="supervisor")
    with pytest.raises(PermissionDenied):
        health.system_health(supervisor)


def test_redis_down_fails(healthy):
    checks = health.run_checks(redis_url=CLOSED_PORT)
    assert health.failed(checks)
    assert by_name(checks)["redis"].status == "fail"
    assert by_name(checks)["postgresql"].status == "ok"  # the rest still runs


def test_no_workers_nor_scheduler_fail(engine, r):
    names = by_name(health.run_checks())
    assert names["workers"].status == "fail" and names["scheduler"].status == "fail"


def test_a_pending_migration_fails(healthy, servers):
    url, drop = fresh_database(servers["DATABASE_URL"], prefix="wb_doctor")
    try:
        upgrade_database(url, "0010")
        checks = health.run_checks(database_url=url)
        assert by_name(checks)["migrations"].status == "fail"
        assert "migrate" in by_name(checks)["migrations"].detail
    finally:
        drop()


def test_a_wrong_secret_key_fails(healthy, settings_env):
    settings_env(WORKBENCH_SECRET_KEY=Fernet.generate_key().decode())
    check = by_name(health.run_checks())["secret key"]
    assert check.status == "fail" and "wrong key" in check.detail


def test_a_data_dir_open_to_others_fails(healthy):
    data_dir = get_settings().data_dir
    mode = data_dir.stat().st_mode
    data_dir.chmod(0o755)
    try:
        check = by_name(health.run_checks())["data dir"]
        assert check.status == "fail" and "open to other users" in check.detail
    finally:
        data_dir.chmod(mode)


def test_the_command_prints_one_line_per_check_and_exits_1_on_a_failure(healthy):
    env = dict(os.environ, REDIS_URL=CLOSED_PORT)
    done = subprocess.run([sys.executable, "-m", "workbench", "doctor"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("fail") and " redis " in line for line in lines), done.stdout
    assert any(line.startswith("ok") and " postgresql " in line for line in lines), done.stdout
    ok = subprocess.run([sys.executable, "-m", "workbench", "doctor"], cwd=ROOT, env=dict(os.environ),
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_settings_page_shows_the_checks_to_admins_only(healthy):
    from tests.test_pages_settings import open_page

    at = open_page(healthy)
    assert not at.exception
    at = at.button(key="system_health_run").click().run()
    assert not at.exception
    assert "Tudo certo." in [s.value for s in at.success]
    table = next(d.value for d in at.dataframe if "Verificação" in d.value.columns)
    assert list(table.columns) == ["Situação", "Verificação", "Detalhe"]
    assert "Chave secreta" in list(table["Verificação"]) and set(table["Situação"]) == {"OK"}
    supervisor = make_actor(healthy.workspace_id, role="supervisor")
    assert not [b for b in open_page(supervisor).button if b.key == "system_health_run"]
