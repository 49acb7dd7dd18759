"""Long contact operations a worker runs — bulk actions and imports: create, queue, follow, settle.

The request creates the job row (``contact_jobs``) in its own transaction and queues it after the commit
(``queue_job``); a worker runs ``engine.worker.contact_jobs.run``, which hands the job to its kind's runner
(``workbench.services.contact_bulk.run_job``, ``workbench.services.contact_import.run_job``). A runner works
in batches and commits each batch together with ``done`` moved past it (``advance``), so a job cut off by a
crash is retried by RQ (``RETRY``) and resumes after its last committed batch, writing nothing twice. The
page polls ``job_status`` for its progress bar and result line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rq import Queue, Retry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import NotFound
from workbench.base.i18n import t
from workbench.services.auth import Actor
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import ContactJob, ContactJobError
from workbench.store.outages import after_commit

JOB_FUNCTION = "engine.worker.contact_jobs.run"
JOB_TIMEOUT_S = 3600
RETRY = Retry(max=3, interval=[5, 30, 120])
REQUEUE_AFTER_S = 120  # a job still queued this long lost its RQ job (Redis was away when it was queued, or lost it)
# A job still running this long outlived RQ's timeout and every retry: nothing runs it any more.
GIVE_UP_AFTER_S = JOB_TIMEOUT_S * (1 + RETRY.max) + sum(RETRY.intervals) + 600


def create_job(session: Session, actor: Actor, kind: str, params: dict[str, Any], total: int,
               file_name: str | None = None) -> ContactJob:
    """Add a queued job of the actor's workspace in ``session`` (queue it with ``queue_job`` after the commit)."""
    job = ContactJob(workspace_id=actor.workspace_id, created_by=actor.user_id, kind=kind, params=params,
                     total=total, file_name=file_name)
    session.add(job)
    session.flush()
    return job


def queue_job(job_id: int) -> None:
    """Hand a committed job to the workers (raises ``AfterCommit`` when Redis is away: the job waits)."""
    with after_commit():
        Queue("default", connection=get_redis()).enqueue(
            JOB_FUNCTION, job_id, job_timeout=JOB_TIMEOUT_S, retry=RETRY, result_ttl=0, failure_ttl=86400)


def start(session: Session, job_id: int) -> ContactJob | None:
    """Lock a job for its runner and mark it running; None when it is already settled (a late retry)."""
    job = session.scalar(select(ContactJob).where(ContactJob.id == job_id).with_for_update())
    if job is None or job.status in ("done", "failed"):
        return None
    if job.status == "queued":
        job.status, job.started_at = "running", now()
    return job


def advance(session: Session, job_id: int, done: int, result: dict[str, Any]) -> None:
    """Move the resume cursor and the counts, in the transaction of the batch they describe."""
    session.execute(update(ContactJob).where(ContactJob.id == job_id).values(done=done, result=result))


def add_errors(session: Session, job_id: int, errors: list[tuple[int, str | None, str, dict[str, Any]]]) -> None:
    """Keep rows the job could not take: (line, column, pt-BR reason, the row as read)."""
    session.add_all(ContactJobError(job_id=job_id, line=line, column=column, message=message, row=row)
                    for line, column, message, row in errors)


def finish(session: Session, job_id: int, result: dict[str, Any], error: str | None = None) -> None:
    """Settle a job: done with its result, or failed with a pt-BR reason."""
    session.execute(update(ContactJob).where(ContactJob.id == job_id).values(
        status="failed" if error else "done", result=result, error=error, finished_at=now()))


def recover(session: Session, redis_client=None) -> int:
    """The sweep's repair of jobs nothing will run: queue again those queued for ``REQUEUE_AFTER_S`` (a second
    copy is harmless: ``start`` locks the row and a runner resumes after the last batch), and fail those running
    past every timeout and retry. Returns how many jobs were touched."""
    client = redis_client or get_redis()
    at = now()
    stale = session.scalars(select(ContactJob.id).where(
        ContactJob.status == "queued", ContactJob.created_at < at - timedelta(seconds=REQUEUE_AFTER_S))).all()
    for job_id in stale:
        # at most once per period per job, however often the sweep runs
        if client.set(f"wb:contact-job-requeued:{job_id}", "1", nx=True, ex=REQUEUE_AFTER_S):
            Queue("default", connection=client).enqueue(
                JOB_FUNCTION, job_id, job_timeout=JOB_TIMEOUT_S, retry=RETRY, result_ttl=0, failure_ttl=86400)
    abandoned = session.execute(update(ContactJob).where(
        ContactJob.status == "running", ContactJob.started_at < at - timedelta(seconds=GIVE_UP_AFTER_S),
    ).values(status="failed", error=t("contact_job.abandoned"), finished_at=at)).rowcount
    return len(stale) + abandoned


def job_status(actor: Actor, job_id: int) -> dict[str, Any]:
    """A job of the actor's workspace: ``kind``, ``status``, ``total``, ``done``, ``result``, ``error``,
    ``file_name``, ``created_at``, ``finished_at``. Agents see only their own jobs."""
    with session_scope() as session:
        job = session.get(ContactJob, job_id)
        if job is None or job.workspace_id != actor.workspace_id or (
                not actor.is_manager and job.created_by != actor.user_id):
            raise NotFound("contact_job", key="error.contact_job_not_found")
        return {"id": job.id, "kind": job.kind, "status": job.status, "total": job.total, "done": job.done,
                "result": dict(job.result or {}), "error": job.error, "file_name": job.file_name,
                "created_at": job.created_at, "finished_at": job.finished_at}
