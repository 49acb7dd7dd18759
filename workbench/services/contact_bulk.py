"""Bulk actions on contacts: add or remove tags, set or clear the responsible person/team, delete.

The rows are a selection (ids) or every contact a filter lets through (``workbench.services.contact_list.matching``,
so an agent acts only on the contacts of conversations they can see; an id outside that is ``NotFound``). Up to
``BULK_SYNC_LIMIT`` rows run at once; more become a ``ContactJob`` of kind "bulk" that a worker runs
(``run_job``), ``BATCH`` rows per transaction, each committed together with its progress
(``contact_jobs.advance``), so a job cut off mid-way resumes after its last committed batch and touches no row
twice. The job keeps the ids it was created for, so it acts on exactly the rows the confirmation counted.

Each changed contact gets its activity line (``tag_added`` / ``tag_removed`` / ``assigned`` with
``data.source = "bulk"``); a deletion is recorded once for the workspace (the contacts' own feeds go with them).

A bulk action never sends anything: the product is receptive only. Tags put on in bulk therefore do **not** start
the funnels whose trigger is "Tag adicionada" (an agent's tag on one contact does) — starting them would message
hundreds of contacts at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import Conflict, InvalidInput
from workbench.base.i18n import t
from workbench.services import contact_jobs, contact_list, runs
from workbench.services.auth import Actor
from workbench.services.contact_list import ContactFilter, parse_filter
from workbench.services.contacts import MAX_TAG_CHARS
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactJob,
    ContactTag,
    Conversation,
    Tag,
    User,
    WorkspaceMember,
    is_row_id,
)
from workbench.store.outages import after_commit
from workbench.store.text import clean_text

BULK_SYNC_LIMIT = 300
"""Up to this many rows an action runs in the request; above, a worker runs it as a job with a progress bar."""
BULK_MAX_ROWS = 200_000
"""Most rows one action takes (the job keeps their ids)."""
BATCH = 500
ACTIONS = ("add_tags", "remove_tags", "assign", "delete")
MAX_TAGS = 20


def _targets(session: Session, actor: Actor, ids: list[int] | None, flt: ContactFilter | None) -> list[int]:
    """The ids the action will touch, in order; every id of a selection must be visible to the actor."""
    if ids is not None:
        return contact_list.selected(session, actor, ids, BULK_MAX_ROWS)
    query = contact_list.matching(session, actor, flt or ContactFilter()).with_only_columns(Contact.id)
    found = list(session.scalars(query.order_by(Contact.id).limit(BULK_MAX_ROWS + 1)))
    if len(found) > BULK_MAX_ROWS:
        raise InvalidInput("too many rows", key="error.bulk_too_many", max=BULK_MAX_ROWS)
    return found


def count_targets(actor: Actor, *, ids: list[int] | None = None,
                  flt: ContactFilter | dict[str, Any] | None = None) -> int:
    """How many contacts an action on ``ids`` (or on the filter) would touch: the number a confirmation states."""
    flt = None if ids is not None else parse_filter(flt)
    with session_scope() as session:
        return len(_targets(session, actor, ids, flt))


def _params(session: Session, actor: Actor, action: str, tags: list[str] | None, agent_id: int | None,
            team_id: int | None) -> dict[str, Any]:
    """The action's parameters, checked: tag names, or an assignment by the manual assignment's rules."""
    if action not in ACTIONS:
        raise InvalidInput(action, key="error.bulk_action")
    if action == "delete":
        actor.require("admin")
        return {"action": action}
    if action in ("add_tags", "remove_tags"):
        # tag names are trimmed as the inbox trims them (workbench.services.contacts)
        names = list(dict.fromkeys(n for n in (" ".join(clean_text(str(n))[0].split()) for n in tags or []) if n))
        if not names or len(names) > MAX_TAGS:
            raise InvalidInput("tags", key="error.bulk_tags", max=MAX_TAGS)
        if any(len(name) > MAX_TAG_CHARS for name in names):
            raise InvalidInput("tag name", key="error.tag_name", max=MAX_TAG_CHARS)
        return {"action": action, "tags": names}
    # as in conversations.assign: agents may only take conversations for themselves (or hand them to a team)
    if not actor.is_manager and agent_id not in (None, actor.user_id):
        actor.require("admin", "supervisor")
    contact_list.check_ids(session, actor, ContactFilter(agent_id=agent_id, team_id=team_id))
    return {"action": action, "agent_id": agent_id, "team_id": team_id}


def run_bulk(actor: Actor, action: str, *, ids: list[int] | None = None,
             flt: ContactFilter | dict[str, Any] | None = None, tags: list[str] | None = None,
             agent_id: int | None = None, team_id: int | None = None,
             confirmed_count: int | None = None) -> dict[str, Any]:
    """Apply a bulk action to the selected contacts (``ids``) or to every contact the filter lets through.

    Args:
        action: ``add_tags`` / ``remove_tags`` (``tags``: names), ``assign`` (``agent_id`` and ``team_id``, None
            clears that part; agents may only assign to themselves), ``delete`` (admins only).
        confirmed_count: for ``delete``, the count the user confirmed (``count_targets``); when the rows changed
            since, nothing is deleted and ``Conflict`` says so.

    Returns:
        ``{"updated": n, "skipped": m}`` when it ran at once (skipped: nothing to change, e.g. no conversation to
        assign), or ``{"job_id": id, "total": n}`` when a worker runs it.

    Raises:
        InvalidInput, PermissionDenied, NotFound (an id, agent or team outside the actor's scope), Conflict.
        AfterCommit: the action is saved (or the job created) but Redis did not take the news.
    """
    flt = None if ids is not None else parse_filter(flt)
    with session_scope() as session:
        params = _params(session, actor, action, tags, agent_id, team_id)
        targets = _targets(session, actor, ids, flt)
        if action == "delete" and confirmed_count != len(targets):
            raise Conflict("count changed", key="error.bulk_count_changed", count=len(targets))
        if len(targets) > BULK_SYNC_LIMIT:
            job = contact_jobs.create_job(session, actor, "bulk", {**params, "ids": targets}, total=len(targets))
            job_id = job.id
        else:
            job_id = None
            result = _apply(session, actor, params, targets)
            _finish_record(session, actor, params, result)
    if job_id is not None:
        contact_jobs.queue_job(job_id)
        return {"job_id": job_id, "total": len(targets)}
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])
    return result


def _apply(session: Session, actor: Actor, params: dict[str, Any], ids: list[int]) -> dict[str, int]:
    """Apply the action to one batch in ``session``; rows no longer in the actor's scope are skipped."""
    visible = list(session.scalars(contact_list.matching(session, actor, ContactFilter(), ids=ids)
                                   .with_only_columns(Contact.id).order_by(Contact.id)))
    action = params["action"]
    events: list[dict[str, Any]] = []
    changed: set[int] = set()
    if action == "add_tags":
        for contact_id in visible:
            for name in params["tags"]:
                stored, added = runs.tag_contact(session, actor.workspace_id, contact_id, name)
                if added:  # no on_tag_added: bulk tagging starts no funnel (module docstring)
                    changed.add(contact_id)
                    events.append(_event(actor, contact_id, "tag_added", {"tag": stored}))
    elif action == "remove_tags":
        removed = session.execute(delete(ContactTag).where(
            ContactTag.contact_id.in_(visible),
            ContactTag.tag_id.in_(select(Tag.id).where(Tag.workspace_id == actor.workspace_id, func.lower(Tag.name)
                                                       .in_([n.lower() for n in params["tags"]])))
        ).returning(ContactTag.contact_id, ContactTag.tag_id)).all()
        tag_names = dict(session.execute(select(Tag.id, Tag.name).where(Tag.id.in_({r.tag_id for r in removed}))).all())
        for row in removed:
            changed.add(row.contact_id)
            events.append(_event(actor, row.contact_id, "tag_removed", {"tag": tag_names[row.tag_id]}))
    elif action == "assign":
        rows = session.execute(update(Conversation).where(Conversation.contact_id.in_(visible)).values(
            agent_id=params["agent_id"], team_id=params["team_id"],
            assigned_at=now() if params["agent_id"] else None).returning(Conversation.contact_id)).all()
        for row in rows:
            changed.add(row.contact_id)
            events.append(_event(actor, row.contact_id, "assigned",
                                 {"agent_id": params["agent_id"], "team_id": params["team_id"]}))
    else:
        changed = set(session.scalars(delete(Contact).where(Contact.id.in_(visible)).returning(Contact.id)))
    if events:
        session.execute(insert(ActivityEvent), events)
    return {"updated": len(changed), "skipped": len(ids) - len(changed)}


def _event(actor: Actor, contact_id: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"workspace_id": actor.workspace_id, "actor_user_id": actor.user_id, "kind": kind,
            "subject_type": "contact", "subject_id": contact_id, "data": {**data, "source": "bulk"}}


def _finish_record(session: Session, actor: Actor, params: dict[str, Any], result: dict[str, int]) -> None:
    """One workspace line per action (who, what, how many): deletions leave no contact feed to read it in."""
    session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind="bulk",
                              subject_type="workspace", subject_id=actor.workspace_id,
                              data={"action": params["action"], "rows": result["updated"], "source": "bulk",
                                    **{k: v for k, v in params.items() if k in ("tags", "agent_id", "team_id")}}))


def _job_actor(session: Session, job: ContactJob) -> Actor | None:
    """The job's author as they are now (a removed member or a changed role counts), or None."""
    row = session.execute(select(User.id, User.name, User.email, WorkspaceMember.role)
                          .join(WorkspaceMember, WorkspaceMember.user_id == User.id)
                          .where(User.id == job.created_by, WorkspaceMember.workspace_id == job.workspace_id,
                                 User.is_active.is_(True))).first()
    return Actor(row.id, job.workspace_id, row.role, row.name, row.email) if row else None


def run_job(job_id: int) -> dict[str, Any]:
    """Run (or resume) a bulk job: ``BATCH`` rows per transaction, each with its progress; returns the result.

    The author's current role and scope apply to every batch (rows they can no longer see are skipped). A job
    whose author left the workspace, or may no longer do the action, fails with a reason.
    """
    if not is_row_id(job_id):
        return {}
    with session_scope() as session:
        job = contact_jobs.start(session, job_id)
        if job is None:
            return {}
        params, done, result = dict(job.params), job.done, dict(job.result or {"updated": 0, "skipped": 0})
        actor = _job_actor(session, job)
        if actor is None or (params["action"] == "delete" and actor.role != "admin"):
            contact_jobs.finish(session, job_id, result, error=t("error.bulk_job_forbidden"))
            return result
    ids: list[int] = params.pop("ids")
    while done < len(ids):
        batch = ids[done:done + BATCH]
        with session_scope() as session:
            counts = _apply(session, actor, params, batch)
            done += len(batch)
            result = {key: result.get(key, 0) + counts[key] for key in ("updated", "skipped")}
            contact_jobs.advance(session, job_id, done, result)
    with session_scope() as session:
        _finish_record(session, actor, params, result)
        contact_jobs.finish(session, job_id, result)
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])
    return result
