"""Alembic environment: online migrations against the URL the caller set."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from workbench.store.config import get_settings
from workbench.store.db import normalize_url
from workbench.store.models import Base

config = context.config
# upgrade_database sets the URL; the alembic command line falls back to the DATABASE_URL setting
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url or ""
connectable = create_engine(normalize_url(url), poolclass=pool.NullPool, hide_parameters=True)
with connectable.connect() as connection:
    # one migrator at a time: `up` on two machines must not race on the same database
    connection.exec_driver_sql("SELECT pg_advisory_lock(727001)")
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.exec_driver_sql("SELECT pg_advisory_unlock(727001)")
    connection.commit()
