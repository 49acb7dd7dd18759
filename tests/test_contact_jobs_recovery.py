"""Contact jobs nothing will run are queued again or given up by the sweep (workbench/services/contact_jobs.py)."""

from __future__ import annotations

from datetime import timedelta

from rq import Queue
from sqlalchemy import update

from engine.worker import jobs
from tests.factories import make_actor, make_workspace
from workbench.base.clock import now
from workbench.services import contact_jobs
from workbench.store.db import session_scope
from workbench.store.models import ContactJob


def _job(actor, status: str, age_s: int) -> int:
    with session_scope() as session:
        job = contact_jobs.create_job(session, actor, "bulk", {}, total=10)
        session.execute(update(ContactJob).where(ContactJob.id == job.id).values(
            status=status, created_at=now() - timedelta(seconds=age_s), started_at=now() - timedelta(seconds=age_s)))
        return job.id


def test_a_job_queued_while_redis_lost_it_is_queued_again_once_per_period(engine, r):
    actor = make_actor(make_workspace())
    fresh, lost = _job(actor, "queued", 10), _job(actor, "queued", contact_jobs.REQUEUE_AFTER_S + 60)
    jobs.sweep()
    jobs.sweep()  # a second sweep soon after does not queue it twice
    queued = [job.args for job in Queue("default", connection=r).jobs if job.func_name == contact_jobs.JOB_FUNCTION]
    assert queued == [(lost,)] and fresh != lost


def test_a_job_running_past_every_timeout_and_retry_is_failed_with_a_reason(engine, r):
    actor = make_actor(make_workspace())
    alive, dead = _job(actor, "running", 60), _job(actor, "running", contact_jobs.GIVE_UP_AFTER_S + 60)
    jobs.sweep()
    assert contact_jobs.job_status(actor, alive)["status"] == "running"
    gone = contact_jobs.job_status(actor, dead)
    assert gone["status"] == "failed" and "não pôde ser retomada" in gone["error"]
