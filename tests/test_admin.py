"""`python -m workbench admin …`: workspaces and accounts from the shell, against DATABASE_URL and the embedded
server; passwords printed once or read from standard input, never taken as arguments."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import make_actor, make_workspace
from workbench.base.errors import AuthError
from workbench.services import auth
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, AuthSession, User

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", "admin", *args], cwd=ROOT, env=env or dict(os.environ),
                          input=stdin, capture_output=True, text=True, timeout=300)


def password_of(out: str) -> str:
    return re.search(r"senha:\s+(\S+)", out).group(1)


def test_create_workspace_prints_a_password_that_logs_in(engine, r):
    done = run("create-workspace", "Loja Centro", "--admin-email", "Dona@Loja.com", "--admin-name", "Dona")
    assert done.returncode == 0, done.stderr
    actor, _ = auth.login("dona@loja.com", password_of(done.stdout))
    assert actor.role == "admin"
    listed = run("list").stdout
    assert "Loja Centro" in listed and "dona@loja.com" in listed and "admin" in listed


def test_create_user_reads_its_password_from_stdin(engine, r):
    ws = make_workspace()
    make_actor(ws)
    done = run("create-user", "ana@loja.com", "--name", "Ana", "--role", "supervisor", "--workspace", str(ws),
               "--password-stdin", stdin="uma-senha-longa-1\n")
    assert done.returncode == 0, done.stderr
    assert "uma-senha-longa-1" not in done.stdout + done.stderr  # never echoed
    assert auth.login("ana@loja.com", "uma-senha-longa-1")[0].role == "supervisor"


def test_bad_input_gets_a_pt_br_message_and_changes_nothing(engine, r):
    ws = make_workspace()
    admin = make_actor(ws, email="chefe@loja.com")
    short = run("create-user", "bia@loja.com", "--workspace", str(ws), "--password-stdin", stdin="curta\n")
    assert short.returncode == 1 and "senha" in short.stderr.lower()
    taken = run("create-user", admin.email, "--workspace", str(ws))
    assert taken.returncode == 1 and "Já existe uma conta com esse e-mail." in taken.stderr
    missing = run("create-user", "x@loja.com", "--workspace", "999")
    assert missing.returncode == 1 and "Espaço de trabalho não encontrado." in missing.stderr
    last = run("deactivate", admin.email)
    assert last.returncode == 1 and "último administrador" in last.stderr
    with session_scope() as s:
        assert s.scalars(select(User.email).order_by(User.id)).all() == [admin.email]
        assert s.get(User, admin.user_id).is_active


def test_reset_password_ends_logins_and_deactivate_locks_out(engine, r):
    ws = make_workspace()
    make_actor(ws, email="chefe@loja.com")
    agent = make_actor(ws, role="agent", email="ze@loja.com")
    _, token = auth.login("ze@loja.com", "senha-de-teste-123")
    done = run("reset-password", "ZE@loja.com")
    assert done.returncode == 0, done.stderr
    assert auth.resume(token) is None
    new = password_of(done.stdout)
    assert auth.login("ze@loja.com", new)[0].user_id == agent.user_id
    with pytest.raises(AuthError):
        auth.login("ze@loja.com", "senha-de-teste-123")
    off = run("deactivate", "ze@loja.com")
    assert off.returncode == 0, off.stderr
    with pytest.raises(AuthError):
        auth.login("ze@loja.com", new)
    assert "(desativado)" in run("list").stdout
    with session_scope() as s:
        kinds = s.execute(select(ActivityEvent.kind, ActivityEvent.actor_user_id)).all()
        assert ("password_reset", None) in kinds and ("user_deactivated", None) in kinds
        assert s.scalar(select(AuthSession.revoked_at).where(AuthSession.user_id == agent.user_id))


def test_admin_commands_on_the_embedded_server():
    """No DATABASE_URL: the data dir's embedded PostgreSQL is started, migrated, used and stopped."""
    data_dir = Path(f"/tmp/wbt-admin-{uuid.uuid4().hex[:8]}")  # outside pytest's dir: postgres runs as another user
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["WORKBENCH_DATA_DIR"] = str(data_dir)
    try:
        made = run("create-workspace", "Embutido", "--admin-email", "op@loja.com", env=env)
        assert made.returncode == 0, made.stderr
        assert password_of(made.stdout)
        listed = run("list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "Embutido" in listed.stdout and "op@loja.com" in listed.stdout
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
