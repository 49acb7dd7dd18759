"""Cached plans do not outlive the tables they were made for: a plan made while a table was nearly empty (a new
installation's first minute) is made again once the table has grown, and the message path's statements reach
their rows by index whatever plan PostgreSQL keeps for them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from tests.factories import make_instance, make_workspace
from workbench.store import db
from workbench.store.models import Funnel, FunnelVersion


def _explain(cursor, statement: str) -> str:
    cursor.execute(f"EXPLAIN EXECUTE {statement}")
    return "\n".join(row[0] for row in cursor.fetchall())


def _generic_plan(cursor, statement: db.HotStatement, params: list[str], args: str) -> str:
    """The plan PostgreSQL keeps for ``statement`` once it settles on a generic one, made from the tables as they
    are in ``cursor``'s transaction: psycopg's named parameters become ``$1``… in ``params``' order, and ``args`` is
    the argument list of the EXECUTE."""
    sql = re.sub(r"%\((\w+)\)s", lambda m: f"${params.index(m.group(1)) + 1}", statement.sql)
    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    cursor.execute(f"PREPARE plan_probe AS {sql}")
    try:
        return _explain(cursor, f"plan_probe({args})")
    finally:
        cursor.execute("DEALLOCATE plan_probe")


def test_a_pooled_connection_plans_its_statements_again_once_its_plans_are_old(engine, monkeypatch):
    # an engine of its own, so that both checkouts get the one connection it opens
    url = engine.url.update_query_dict({"application_name": "wb_plans_test"})
    plans_engine = db.get_engine(url.render_as_string(hide_password=False))
    with plans_engine.connect() as conn:
        driver = conn.connection.driver_connection
        cursor = driver.cursor()
        cursor.execute("CREATE TEMP TABLE probe (id integer PRIMARY KEY, v integer)")
        cursor.execute("ANALYZE probe")  # known to be empty, as autovacuum finds a new installation's tables
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        driver.commit()  # the new table's own invalidations go out at commit, before any plan is made
        cursor.execute("PREPARE probe_plan AS SELECT v FROM probe WHERE id = $1")
        assert "Seq Scan" in _explain(cursor, "probe_plan(1)"), "a scan is the cheapest way through no page"
        cursor.execute("INSERT INTO probe SELECT g, g FROM generate_series(1, 20000) AS g")
        driver.commit()
        assert "Seq Scan" in _explain(cursor, "probe_plan(1)"), "PostgreSQL keeps the plan until an analyze"
    with plans_engine.connect() as conn:  # checked out again before the plans are PLAN_TTL_S old: kept
        assert "Seq Scan" in _explain(conn.connection.driver_connection.cursor(), "probe_plan(1)")
    monkeypatch.setattr(db, "PLAN_TTL_S", 0.0)
    with plans_engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        plan = _explain(cursor, "probe_plan(1)")
        assert "Seq Scan" not in plan and "probe_pkey" in plan, plan
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'probe_plan'")
        assert cursor.fetchone() == (1,), "the statement stays prepared: only its plan was made again"


def test_a_connection_that_broke_since_the_pools_ping_is_handed_on_for_its_first_statement_to_fail(engine, monkeypatch):
    """The refresh runs at checkout, after the pool's ping: a connection that broke in between must reach the
    caller, whose first statement raises SQLAlchemy's ``OperationalError`` (an outage every caller handles), not
    a psycopg error from inside the pool."""
    monkeypatch.setattr(db, "PLAN_TTL_S", 0.0)
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        record = conn.connection._connection_record
        dbapi_connection = conn.connection.driver_connection
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        record.info[db._PLANS_AT] = -1.0
        db._refresh_plans(dbapi_connection, record, None)  # does not raise
        assert record.info[db._PLANS_AT] == -1.0, "not refreshed: the next checkout tries again"
        with pytest.raises(OperationalError):
            conn.exec_driver_sql("SELECT 1")


def test_the_store_statement_looks_up_live_runs_per_conversation_in_any_plan(engine):
    """``inbound._STORE`` asks, per stored message, whether its conversation has a live run. A plan made for the
    50 rows PostgreSQL assumes a batch holds would otherwise read every live run of the installation into a hash
    (thousands, when a funnel waits for answers) to store one message."""
    from engine.worker import inbound

    ws = make_workspace()
    inst = make_instance(ws)
    with db.session_scope() as s:
        funnel = Funnel(workspace_id=ws, name="Boas-vindas")
        s.add(funnel)
        s.flush()
        version = FunnelVersion(funnel_id=funnel.id, version=1, definition={})
        s.add(version)
        s.flush()
        cursor = s.connection().connection.driver_connection.cursor()
        # 2,000 leads, each waiting in the welcome funnel for an answer
        cursor.execute("INSERT INTO contacts (workspace_id, instance_id, phone) "
                       "SELECT %s, %s, '55119' || g FROM generate_series(1, 2000) AS g", (ws, inst))
        cursor.execute("INSERT INTO conversations (workspace_id, instance_id, contact_id, status) "
                       "SELECT workspace_id, instance_id, id, 'open' FROM contacts")
        cursor.execute("INSERT INTO funnel_runs (workspace_id, funnel_id, version_id, conversation_id, contact_id, "
                       "status, current_node, variables) "
                       "SELECT workspace_id, %s, %s, id, contact_id, 'waiting', 'n1', '{}' FROM conversations",
                       (funnel.id, version.id))
        cursor.execute("ANALYZE funnel_runs")
        plan = _generic_plan(cursor, inbound._STORE, ["rows"], "'[]'::jsonb")
    assert "hashed SubPlan" not in plan and "ix_funnel_runs_live" in plan, plan


def test_the_acks_statement_finds_its_rows_by_index_even_in_a_plan_made_on_empty_tables(engine):
    """``outbox._ACKS`` is prepared: the plan PostgreSQL keeps may have been made while a new installation's tables
    were empty, and must still reach outbox rows and messages by primary key, never by reading a table."""
    from workbench.services import outbox

    with db.session_scope() as s:
        cursor = s.connection().connection.driver_connection.cursor()
        plan = _generic_plan(cursor, outbox._ACKS, ["outbox_ids", "statuses", "errors", "wa_ids", "ats", "instance_id"],
                             "ARRAY[1]::bigint[], ARRAY['sent'], ARRAY[NULL]::text[], ARRAY['W1'], ARRAY[now()], 1")
    assert "Seq Scan" not in plan and "pk_outbox" in plan and "pk_messages" in plan, plan


def _plans(cursor, marker: str) -> tuple[int, int]:
    """(generic, custom) plans PostgreSQL made so far for the statement psycopg prepared whose SQL holds ``marker``."""
    cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                   (f"%{marker}%",))
    return cursor.fetchone() or (0, 0)


def test_the_receipts_statement_is_planned_once_not_for_every_receipt(engine):
    """A paced flow brings one receipt at a time. The statement's input must look the same to the planner for one
    receipt as for any number of them, or every custom plan (one row) looks cheaper than the generic one (a guess of
    a hundred) and PostgreSQL plans the statement anew on every run: 0.2 ms each, a fifth of its cost."""
    from engine.worker.inbound import _RECEIPTS

    inst = make_instance(make_workspace())
    with db.session_scope() as s:
        for n in range(20):
            _RECEIPTS.execute(s, {"instance_id": inst, "status": "delivered", "lower": ["pending", "sent"],
                                  "receipts": [{"wa_id": f"W{n}", "at": datetime.now(UTC).isoformat()}]})
        generic, custom = _plans(s.connection().connection.driver_connection.cursor(), "WITH found AS MATERIALIZED")
    assert generic > 0 and custom <= 5, (generic, custom)
