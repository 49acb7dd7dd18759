"""A contact's activity feed: one chronological stream, newest first, filterable by kind, paginated.

Four sources make the stream, each read with indexed queries limited to a page and then merged:

- **messages** of the contact's conversation (both directions, texts exactly as stored);
- **activity events** (``activity_events``) of the contact (tags, field changes, imports, merges, bulk actions) and
  of its conversation (assignments, bot paused/resumed, status changes);
- **notes** (``notes``: the note as it stands now, with its author and when it was edited). The ``note_*``
  activity events are the audit trail of notes and are not repeated in the stream;
- **funnel runs** of the contact, placed where they started, each with its steps (``funnel_events``).

Order and pages: items sort by ``(created_at, source, id)`` descending, and a page ends with the ``Cursor`` of its
last item; the next page is everything strictly below it, so consecutive pages never repeat or skip an item even
when many share a timestamp. Each query reads at most ``limit + 1`` rows below the cursor, in the order of its
index (``ix_messages_conversation_time``, ``ix_activity_subject_time``: migration 0006), so a page costs a few small
index scans whatever the contact's history (``bench/contact_feed.py`` measures it).

Every item says its ``source`` (``contact``, ``agent``, ``funnel``, ``import``, ``bulk``, ``merge``, ``ai``,
``odoo``, ``bot``, ``phone`` or ``system``) and its ``author`` (a person's or a funnel's name, when there is one).
Message texts, tag names, field values and notes are untrusted: pages show them literally.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, true, tuple_
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput
from workbench.base.i18n import has_key, t
from workbench.services.auth import Actor
from workbench.services.contact_card import load_contact, provenance_text
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Funnel,
    FunnelEvent,
    FunnelRun,
    Message,
    Note,
    Team,
    User,
    WorkspaceMember,
    is_row_id,
)

Cursor = tuple[datetime, str, int]
"""Where a page ended: (created_at, source, id) of its last item."""

PAGE_SIZE = 30
MAX_PAGE_SIZE = 100
MAX_STEPS = 30
"""Steps shown under one funnel run (the first ones; a longer run says how many more)."""

SOURCES = ("activity", "message", "note", "run")
KINDS = ("message", "tag", "field", "assignment", "bot", "status", "funnel", "note", "merge", "import", "bulk")
"""What the feed can be filtered by."""
ACTIVITY_KINDS = {
    "tag_added": "tag", "tag_removed": "tag",
    "field_changed": "field", "contact_updated": "field",
    "assigned": "assignment",
    "bot_paused": "bot", "bot_resumed": "bot",
    "status_open": "status", "status_pending": "status", "status_closed": "status",
    "merged": "merge", "imported": "import", "bulk": "bulk",
    "odoo_lead_created": "funnel", "odoo_lead_updated": "funnel", "odoo_push_failed": "funnel",
}
"""Activity event kind -> feed kind. Other kinds show as ``other`` in the unfiltered stream."""
NOTE_EVENTS = ("note_added", "note_edited", "note_deleted")
CONTACT_COLUMNS = ("name", "email", "company")
"""Field changes of these keys are the contact's own columns, named in Portuguese; other keys are custom fields."""


def _check(kinds: Iterable[str] | None, before: Any) -> tuple[set[str], Cursor | None]:
    chosen = set(kinds or ()) or set(KINDS)
    if not chosen <= set(KINDS):
        raise InvalidInput("unknown kind", key="error.feed_kind")
    if before is not None:
        ok = (isinstance(before, tuple) and len(before) == 3 and isinstance(before[0], datetime)
              and before[0].tzinfo is not None and before[1] in SOURCES and is_row_id(before[2]))
        if not ok:
            raise InvalidInput("bad cursor", key="error.feed_cursor")
    return chosen, before


def _below(at: Any, row_id: Any, source: str, cursor: Cursor | None) -> ColumnElement[bool]:
    """Rows of ``source`` that sort strictly after ``cursor`` in the stream's descending order."""
    if cursor is None:
        return true()
    at_c, source_c, id_c = cursor
    if source < source_c:  # at the same instant this source sorts lower, so it comes after the cursor
        return at <= at_c
    if source > source_c:
        return at < at_c
    return tuple_(at, row_id) < tuple_(at_c, id_c)


def _messages(session: Session, conversation_id: int, cursor: Cursor | None, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Message.id, Message.created_at, Message.direction, Message.type, Message.text, Message.data,
               Message.status, Message.sent_by_user_id, User.name.label("user"), Funnel.name.label("funnel"),
               Message.sent_by_funnel_id)
        .outerjoin(User, User.id == Message.sent_by_user_id).outerjoin(Funnel, Funnel.id == Message.sent_by_funnel_id)
        .where(Message.conversation_id == conversation_id,
               _below(Message.created_at, Message.id, "message", cursor))
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)).mappings().all()
    items = []
    for row in rows:
        data = row["data"] or {}
        if row["direction"] == "in":
            source, author = "contact", None
        elif row["sent_by_user_id"]:
            source, author = "agent", row["user"]
        elif row["sent_by_funnel_id"]:
            source, author = "funnel", row["funnel"]
        else:  # the default reply, or a message typed on the phone itself
            source, author = ("bot" if data.get("auto") else "phone"), None
        items.append({"kind": "message", "event": f"message_{row['direction']}", "source": source, "author": author,
                      "at": row["created_at"], "key": (row["created_at"], "message", row["id"]),
                      "text": data.get("edited_text") or row["text"],
                      "data": {"type": row["type"], "status": row["status"], "revoked": bool(data.get("revoked")),
                               "edited": bool(data.get("edited_text"))}})
    return items


def _activity(session: Session, actor: Actor, contact_id: int, conversation_id: int | None, kinds: set[str],
              cursor: Cursor | None, limit: int) -> list[dict[str, Any]]:
    subjects = [("contact", contact_id)] + ([("conversation", conversation_id)] if conversation_id is not None else [])
    rows = []
    for subject_type, subject_id in subjects:  # one ordered index scan each (an OR of both would sort them all)
        query = select(ActivityEvent.id, ActivityEvent.created_at, ActivityEvent.kind, ActivityEvent.data,
                       ActivityEvent.actor_user_id, User.name.label("user")) \
            .outerjoin(User, User.id == ActivityEvent.actor_user_id) \
            .where(ActivityEvent.workspace_id == actor.workspace_id, ActivityEvent.subject_type == subject_type,
                   ActivityEvent.subject_id == subject_id, ActivityEvent.kind.not_in(NOTE_EVENTS),
                   _below(ActivityEvent.created_at, ActivityEvent.id, "activity", cursor))
        if kinds != set(KINDS):
            query = query.where(ActivityEvent.kind.in_([k for k, kind in ACTIVITY_KINDS.items() if kind in kinds]))
        rows += session.execute(query.order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc())
                                .limit(limit)).mappings().all()
    items = []
    for row in rows:
        data = dict(row["data"] or {})
        source = data.get("source") if isinstance(data.get("source"), str) else None
        items.append({"kind": ACTIVITY_KINDS.get(row["kind"], "other"), "event": row["kind"],
                      "source": source or ("agent" if row["actor_user_id"] else "system"), "author": row["user"],
                      "at": row["created_at"], "key": (row["created_at"], "activity", row["id"]), "text": None,
                      "data": data})
    return items


def _notes(session: Session, contact_id: int, cursor: Cursor | None, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Note.id, Note.created_at, Note.updated_at, Note.body, User.name.label("user"))
        .outerjoin(User, User.id == Note.author_id)
        .where(Note.contact_id == contact_id, _below(Note.created_at, Note.id, "note", cursor))
        .order_by(Note.created_at.desc(), Note.id.desc()).limit(limit)).mappings().all()
    return [{"kind": "note", "event": "note", "source": "agent", "author": row["user"], "at": row["created_at"],
             "key": (row["created_at"], "note", row["id"]), "text": row["body"],
             "data": {"edited_at": row["updated_at"]}} for row in rows]


def _runs(session: Session, contact_id: int, cursor: Cursor | None, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(FunnelRun.id, FunnelRun.started_at, FunnelRun.ended_at, FunnelRun.status, FunnelRun.current_node,
               FunnelRun.error, Funnel.name.label("funnel"))
        .join(Funnel, Funnel.id == FunnelRun.funnel_id)
        .where(FunnelRun.contact_id == contact_id, _below(FunnelRun.started_at, FunnelRun.id, "run", cursor))
        .order_by(FunnelRun.started_at.desc(), FunnelRun.id.desc()).limit(limit)).mappings().all()
    return [{"kind": "funnel", "event": "funnel_run", "source": "funnel", "author": row["funnel"],
             "at": row["started_at"], "key": (row["started_at"], "run", row["id"]), "text": None,
             "data": {"run_id": row["id"], "funnel": row["funnel"], "status": row["status"],
                      "node": row["current_node"], "ended_at": row["ended_at"], "error": row["error"]}}
            for row in rows]


def _attach_steps(session: Session, items: list[dict[str, Any]]) -> None:
    """Give each funnel run of the page its first ``MAX_STEPS`` steps and the count of the others."""
    runs = {item["data"]["run_id"]: item for item in items if item["event"] == "funnel_run"}
    if not runs:
        return
    position = func.row_number().over(partition_by=FunnelEvent.run_id, order_by=FunnelEvent.id).label("position")
    total = func.count().over(partition_by=FunnelEvent.run_id).label("total")
    ranked = select(FunnelEvent.run_id, FunnelEvent.node_id, FunnelEvent.node_type, FunnelEvent.output,
                    FunnelEvent.status, FunnelEvent.error, FunnelEvent.created_at, position, total) \
        .where(FunnelEvent.run_id.in_(list(runs))).subquery()
    rows = session.execute(select(ranked).where(ranked.c.position <= MAX_STEPS)
                           .order_by(ranked.c.run_id, ranked.c.position)).mappings().all()
    for item in runs.values():
        item["steps"], item["more_steps"] = [], 0
    for row in rows:
        item = runs[row["run_id"]]
        item["steps"].append({"node": row["node_id"], "type": row["node_type"], "output": row["output"],
                              "status": row["status"], "error": row["error"], "at": row["created_at"]})
        item["more_steps"] = row["total"] - MAX_STEPS if row["total"] > MAX_STEPS else 0


def _attach_assignees(session: Session, actor: Actor, items: list[dict[str, Any]]) -> None:
    """Name who an assignment went to (``data.to``): the person, else the team (ids of the workspace only)."""
    assigned = [item for item in items if item["event"] == "assigned"]
    if not assigned:
        return
    people = {item["data"].get("agent_id") for item in assigned} - {None}
    teams = {item["data"].get("team_id") for item in assigned} - {None}
    names = {("agent", row.id): row.name for row in session.execute(
        select(User.id, User.name).join(WorkspaceMember, WorkspaceMember.user_id == User.id)
        .where(WorkspaceMember.workspace_id == actor.workspace_id, User.id.in_([p for p in people if is_row_id(p)])))}
    names |= {("team", row.id): row.name for row in session.execute(
        select(Team.id, Team.name).where(Team.workspace_id == actor.workspace_id,
                                         Team.id.in_([t for t in teams if is_row_id(t)])))}
    for item in assigned:
        data = item["data"]
        item["data"] = {**data, "to": names.get(("agent", data.get("agent_id"))) or names.get(("team",
                                                                                              data.get("team_id")))}


def feed(actor: Actor, contact_id: int, *, kinds: Iterable[str] | None = None, before: Cursor | None = None,
         limit: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of the contact's feed, newest first.

    Args:
        kinds: feed kinds to keep (``KINDS``); None or empty keeps everything.
        before: the ``next`` cursor of the previous page; None for the newest items.
        limit: items per page, kept within 1..``MAX_PAGE_SIZE``.

    Returns:
        ``items`` — dicts with ``kind``, ``event`` (the precise kind: ``message_in``, ``tag_added``, ``funnel_run``,
        ...), ``source``, ``author``, ``at``, ``key`` (its cursor), ``text`` (a message's or note's text, else None),
        ``data`` (the event's details) and, for funnel runs, ``steps`` and ``more_steps`` — and ``next``: the
        cursor of the following page, None on the last one.

    Raises:
        InvalidInput: an unknown kind or a malformed cursor.
        NotFound: not a contact the actor may open (``contact_card.load_contact``).
    """
    chosen, cursor = _check(kinds, before)
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    with session_scope() as session:
        contact, conv = load_contact(session, actor, contact_id)
        items: list[dict[str, Any]] = []
        if "message" in chosen and conv is not None:
            items += _messages(session, conv.id, cursor, limit + 1)
        if chosen - {"message", "note", "funnel"}:
            items += _activity(session, actor, contact.id, conv.id if conv else None, chosen, cursor, limit + 1)
        if "note" in chosen:
            items += _notes(session, contact.id, cursor, limit + 1)
        if "funnel" in chosen:
            items += _runs(session, contact.id, cursor, limit + 1)
        items.sort(key=lambda item: item["key"], reverse=True)
        page = items[:limit]
        _attach_steps(session, page)
        _attach_assignees(session, actor, page)
    return {"items": page, "next": page[-1]["key"] if len(items) > limit else None}


def _value(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def describe(item: dict[str, Any]) -> str:
    """One line saying what happened, in Portuguese (a message's or note's own text is not part of it).

    The line may contain tag names and field values typed by people: show it literally (``st.text``).
    """
    event, data = item["event"], item["data"]
    if event == "tag_added" or event == "tag_removed":
        return t(f"feed.event.{event}", tag=_value(data.get("tag")))
    if event == "field_changed":
        key = data.get("key")
        field = t(f"feed.changed.{key}") if key in CONTACT_COLUMNS else _value(key)  # custom fields by their key
        line = t("feed.event.field_changed", field=field, old=_value(data.get("old")), new=_value(data.get("new")))
        source = provenance_text(data.get("provenance"))  # written by an AI step: from which message
        return f"{line} ({source})" if source else line
    if event == "contact_updated":
        changed = data.get("changed") if isinstance(data.get("changed"), list) else []
        parts = [t(f"feed.changed.{c}") if has_key(f"feed.changed.{c}") else str(c) for c in changed]
        return t("feed.event.contact_updated", changed=", ".join(parts) or "—")
    if event == "assigned":
        return t("feed.event.assigned", to=data.get("to") or t("feed.event.unassigned"))
    if event == "bot_paused":
        reason = data.get("reason")
        label = t(f"feed.pause_reason.{reason}") if has_key(f"feed.pause_reason.{reason}") else _value(reason)
        return t("feed.event.bot_paused", reason=label)
    if event == "merged":
        other = data.get("other") if isinstance(data.get("other"), dict) else {}
        return t("feed.event.merged", name=_value(other.get("display_name")), phone=_value(other.get("phone")))
    if event == "funnel_run":
        return t("feed.event.funnel_run", funnel=_value(data.get("funnel")),
                 status=t(f"inbox.funnel.status.{data.get('status')}")
                 if has_key(f"inbox.funnel.status.{data.get('status')}") else _value(data.get("status")))
    if event == "entry_link":
        return t("feed.event.entry_link", name=_value(data.get("name")), source=_value(data.get("source")))
    if event == "imported":
        return t("feed.event.imported", file=_value(data.get("file_name")))
    if event == "bulk":
        return t("feed.event.bulk", action=_value(data.get("action")))
    if event in ("odoo_lead_created", "odoo_lead_updated"):
        return t(f"feed.event.{event}", lead_id=_value(data.get("lead_id")))
    if event == "odoo_push_failed":
        reason = data.get("reason")
        return t("feed.event.odoo_push_failed",
                 reason=t(f"odoo.problem.{reason}") if has_key(f"odoo.problem.{reason}") else _value(reason))
    key = f"feed.event.{event}"
    return t(key) if has_key(key) else t("feed.event.other", kind=event)
