"""What a notebook needs to start: the analyst's view of a workspace and fresh numbers.

``python -m workbench notebooks`` opens Jupyter with the product's database already set, so a notebook only
does::

    from workbench.analytics import notebook, reports
    actor = notebook.analyst()          # the first workspace (or notebook.analyst(workspace_id=2))
    notebook.refresh()                  # bring the DuckDB copy up to date
    filters = notebook.last_days(actor, 90)

and then calls the same ``reports`` functions the panel's pages call, so a notebook and a dashboard show the
same number.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from workbench.analytics import reports, store
from workbench.services.auth import Actor
from workbench.store.db import session_scope
from workbench.store.models import User, Workspace, WorkspaceMember


def analyst(workspace_id: int | None = None) -> Actor:
    """An admin's view of the workspace (the first one when None): a notebook reads what an admin sees.

    Raises:
        LookupError: no such workspace, or it has no admin.
    """
    with session_scope() as session:
        if workspace_id is None:
            workspace_id = session.scalar(select(Workspace.id).order_by(Workspace.id).limit(1))
        row = session.execute(
            select(User.id, User.name, User.email).join(WorkspaceMember, WorkspaceMember.user_id == User.id)
            .where(WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.role == "admin")
            .order_by(User.id).limit(1)).first()
    if workspace_id is None or row is None:
        raise LookupError("no workspace with an admin: start the product once (python -m workbench up)")
    return Actor(row[0], workspace_id, "admin", row[1], row[2])


def refresh() -> dict[str, Any]:
    """Bring the DuckDB copy up to date now (waits for a refresh the workers may be running)."""
    return store.refresh(wait=True)


def last_days(actor: Actor, days: int, **narrowing: Any) -> reports.Filters:
    """The filters of the last ``days`` days ending today in the workspace's zone."""
    today = reports.preset(actor, "today").end
    return reports.Filters(today - timedelta(days=days - 1), today, **narrowing)
