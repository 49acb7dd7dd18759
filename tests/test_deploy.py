"""compose.yaml and the Dockerfile describe the deployment docs/deploy.md explains: one image for every role,
against one PostgreSQL and one Redis, migrations before the roles, one shared data dir and secret key.

The structure is checked with a YAML parser everywhere; where Docker's compose plugin is installed, ``docker
compose config`` checks the file as Docker reads it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workbench.launcher import ROLES
from workbench.store.config import Settings, env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_role_runs_from_the_one_image_after_the_migration():
    found = services()
    assert {"postgres", "redis", "migrate", *ROLES} <= set(found)
    image = found["migrate"]["image"]
    assert found["migrate"]["command"] == ["migrate"]
    for role in ROLES:
        service = found[role]
        assert service["image"] == image and service["build"] == "."
        assert service["command"] == ["up", "--only", role]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "workbench-data:/data" in service["volumes"]  # media, sessions and claims are shared


def test_every_role_gets_the_same_servers_data_dir_and_secret_key():
    found = services()
    envs = [found[name]["environment"] for name in ("migrate", *ROLES)]
    for key in ("DATABASE_URL", "REDIS_URL", "WORKBENCH_DATA_DIR"):
        assert len({env[key] for env in envs}) == 1, key
    assert all(env["WORKBENCH_SECRET_KEY"].startswith("${WORKBENCH_SECRET_KEY:?") for env in envs)
    assert found["panel"]["environment"]["WORKBENCH_PANEL_ADDRESS"] == "0.0.0.0"
    assert found["panel"]["ports"] == [f"{Settings().panel_port}:{Settings().panel_port}"]
    # every variable the services set is one the product reads
    known = set(env_names().values())
    assert {key for env in envs for key in env} <= known


def test_the_image_runs_the_product_as_its_entry_point():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "workbench"]' in text
    assert "pip install --no-cache-dir -r requirements.txt" in text
    assert "USER workbench" in text  # not root


def test_docker_reads_the_compose_file():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("Docker's compose plugin is not installed here")
    env = {"POSTGRES_PASSWORD": "x", "WORKBENCH_SECRET_KEY": "y", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
