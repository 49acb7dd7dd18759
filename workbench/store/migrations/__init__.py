"""Alembic migrations, applied with ``upgrade_database``.

New revision after a model change:
``alembic -c workbench/store/migrations/alembic.ini revision --autogenerate -m "what changed"``
(with DATABASE_URL pointing at a database at head).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that needs no ini file on the caller's side."""
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent)."""
    from workbench.store.db import normalize_url

    command.upgrade(alembic_config(normalize_url(url)), revision)
