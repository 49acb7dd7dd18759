"""RQ entry point of long contact operations (``workbench/services/contact_jobs.py``)."""

from __future__ import annotations

from typing import Any

from workbench.store.db import session_scope
from workbench.store.models import ContactJob


def run(job_id: int) -> dict[str, Any]:
    """Run (or resume) a contact job with its kind's runner; returns the runner's result."""
    with session_scope() as session:
        kind = session.scalar(ContactJob.__table__.select().with_only_columns(ContactJob.kind)
                              .where(ContactJob.id == job_id))
    if kind == "bulk":
        from workbench.services.contact_bulk import run_job
    elif kind == "import":
        from workbench.services.contact_import import run_job
    else:
        return {"skipped": "no such job"}
    return run_job(job_id)
