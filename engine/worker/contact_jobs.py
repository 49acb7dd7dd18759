"""RQ entry point of long contact operations (``workbench/services/contact_jobs.py``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from workbench.services import contact_bulk, contact_import
from workbench.store.db import session_scope
from workbench.store.models import ContactJob

RUNNERS = {"bulk": contact_bulk.run_job, "import": contact_import.run_job}
"""Job kind -> the service function that runs (or resumes) it."""


def run(job_id: int) -> dict[str, Any]:
    """Run (or resume) a contact job with its kind's runner; returns the runner's result."""
    with session_scope() as session:
        kind = session.scalar(select(ContactJob.kind).where(ContactJob.id == job_id))
    runner = RUNNERS.get(kind)
    return runner(job_id) if runner else {"skipped": "no such job"}
