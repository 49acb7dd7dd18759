"""Funnels: drafts, validation, publishing, activation, import/export and the runs of a contact.

A funnel has one editable draft; publishing validates it and freezes it as a new version; a run keeps the
version it started with. Funnels are the marketers' work (admins and supervisors): only they read and edit them;
agents start active funnels by name (``startable_funnels``) and see their contacts' runs. A draft
may be anything an import produced (only its outer ``{nodes, edges}`` shape is guaranteed), so code reading
drafts here never assumes a node is well-formed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.definition import (
    MAX_NODES,
    Problem,
    ValidationReport,
    canvas_node,
    export_json,
    import_json,
    validate_definition,
)
from engine.core.examples import EXAMPLES
from engine.core.nodes import REGISTRY
from workbench.base.clock import now
from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.base.i18n import t
from workbench.services import conversations, runs
from workbench.services.auth import Actor
from workbench.services.conversation_ref import ConversationRef
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import (
    Contact,
    Conversation,
    EntryLink,
    Funnel,
    FunnelRun,
    FunnelVersion,
    Instance,
    Team,
    WorkspaceMember,
    is_row_id,
)
from workbench.store.outages import after_commit
from workbench.store.text import clean_json, clean_text

EDITORS = ("admin", "supervisor")
LIVE_STATUSES = runs.LIVE
"""Run statuses of a run that may still talk to the contact (the ones ``stop_contact_run`` can stop)."""
EMPTY = {"nodes": [], "edges": []}


def _get(session: Session, actor: Actor, funnel_id: int) -> Funnel:
    funnel = session.get(Funnel, funnel_id)
    if funnel is None or funnel.workspace_id != actor.workspace_id:
        raise NotFound("funnel", key="error.funnel_not_found")
    return funnel


def _name(name: str) -> str:
    name = clean_text((name or "").strip())[0]
    if not name or len(name) > 120:
        raise InvalidInput("name", key="error.funnel_name")
    return name


def list_funnels(actor: Actor) -> list[dict[str, Any]]:
    """Funnel cards, highest priority first.

    Each card has ``id``, ``name``, ``description``, ``is_active``, ``priority``, ``published_version`` (number,
    or None), ``trigger`` (the draft's trigger settings, or None), ``has_draft_changes``, ``draft`` and the
    run counts ``entered`` (every run ever started), ``completed`` and ``waiting`` (runs still live: waiting
    for a reply or a delay, or paused).
    """
    actor.require(*EDITORS)
    with session_scope() as session:
        funnels = session.scalars(select(Funnel).where(Funnel.workspace_id == actor.workspace_id)
                                  .order_by(Funnel.priority.desc(), Funnel.name)).all()
        counts = dict.fromkeys([f.id for f in funnels])
        rows = session.execute(select(FunnelRun.funnel_id, FunnelRun.status, func.count())
                               .where(FunnelRun.workspace_id == actor.workspace_id)
                               .group_by(FunnelRun.funnel_id, FunnelRun.status)).all()
        for funnel_id, status, n in rows:
            entry = counts.get(funnel_id) or {"entered": 0, "completed": 0, "waiting": 0}
            entry["entered"] += n
            if status == "completed":
                entry["completed"] += n
            if status in runs.LIVE:
                entry["waiting"] += n
            counts[funnel_id] = entry
        versions = dict(session.execute(select(FunnelVersion.id, FunnelVersion.version).where(
            FunnelVersion.id.in_([f.published_version_id for f in funnels if f.published_version_id]))).all())
        return [{
            "id": f.id, "name": f.name, "description": f.description, "is_active": f.is_active,
            "priority": f.priority, "published_version": versions.get(f.published_version_id),
            "trigger": _trigger_of(f.draft), "has_draft_changes": _has_changes(session, f), "draft": f.draft,
            **(counts[f.id] or {"entered": 0, "completed": 0, "waiting": 0}),
        } for f in funnels]


def _trigger_of(definition: dict[str, Any]) -> dict[str, Any] | None:
    """The first trigger node's settings, read defensively: an imported draft may hold malformed nodes."""
    for node in definition.get("nodes") or []:
        if not isinstance(node, dict):
            continue
        data = node.get("data")
        data = data if isinstance(data, dict) else {}
        if node.get("type") == "trigger" or data.get("node_type") == "trigger":
            return {k: v for k, v in data.items() if k in ("kind", "mode", "words", "tag", "priority")}
    return None


def _has_changes(session: Session, funnel: Funnel) -> bool:
    if funnel.published_version_id is None:
        return bool(funnel.draft.get("nodes"))
    published = session.scalar(select(FunnelVersion.definition).where(FunnelVersion.id == funnel.published_version_id))
    return published != funnel.draft


def get_funnel(actor: Actor, funnel_id: int) -> dict[str, Any]:
    """One funnel with its draft (for the editor)."""
    actor.require(*EDITORS)
    with session_scope() as session:
        funnel = _get(session, actor, funnel_id)
        return {"id": funnel.id, "name": funnel.name, "description": funnel.description,
                "is_active": funnel.is_active, "priority": funnel.priority, "draft": funnel.draft,
                "published_version_id": funnel.published_version_id}


def create_funnel(actor: Actor, name: str, definition: dict[str, Any] | None = None) -> int:
    """A new funnel with a draft (empty, or the given definition, stored even if not yet valid; cleaned as
    ``save_draft`` cleans it)."""
    actor.require(*EDITORS)
    name, definition = _name(name), clean_json(definition or EMPTY)
    with session_scope() as session:
        funnel = Funnel(workspace_id=actor.workspace_id, name=name, draft=definition, created_by=actor.user_id)
        session.add(funnel)
        session.flush()
        return funnel.id


# Where the ids a node names must belong to the workspace, by the editor's source of their choices (FieldHint).
# (id column, workspace column) of each source.
_REFERENCES = {
    "teams": (Team.id, Team.workspace_id),
    "people": (WorkspaceMember.user_id, WorkspaceMember.workspace_id),
    "numbers": (Instance.id, Instance.workspace_id),
    "entry_links": (EntryLink.id, EntryLink.workspace_id),
}


def _references(definition: Any) -> list[tuple[str, str, str, Any]]:
    """(node id, field, source, id) for every team, person and number id the definition's nodes name.

    Each node that can name one is read through its schema, as the runtime will read it (so ``"7"`` is 7);
    a node its schema refuses is skipped, its problems being reported by ``validate_definition``.
    """
    found: list[tuple[str, str, str, Any]] = []
    if not isinstance(definition, Mapping) or not isinstance(definition.get("nodes"), list) \
            or len(definition["nodes"]) > MAX_NODES:  # refused as a whole by validate_definition
        return found
    for raw in definition["nodes"]:
        node_type = canvas_node(raw).get("type") if isinstance(raw, Mapping) else None
        spec = REGISTRY.get(node_type) if isinstance(node_type, str) else None
        hints = spec.hints.items() if spec else ()
        fields = {name: hint.source for name, hint in hints if hint.source in _REFERENCES}
        if not fields:
            continue
        try:
            node = spec.schema.model_validate(canvas_node(raw))
        except ValidationError:
            continue
        for name, source in fields.items():
            value = getattr(node.data, name, None)
            found += [(node.id, name, source, item) for item in (value if isinstance(value, list) else [value])
                      if item is not None]
    return found


def _foreign(session: Session, workspace_id: int, references: list[tuple[str, str, str, Any]]) -> list[Problem]:
    """An ``unknown_reference`` problem for every referenced id that is not the workspace's."""
    known: dict[str, set[int]] = {}
    for source, (id_column, workspace_column) in _REFERENCES.items():
        wanted = {item for _, _, kind, item in references if kind == source and is_row_id(item)}
        known[source] = set(session.scalars(select(id_column).where(
            workspace_column == workspace_id, id_column.in_(wanted)))) if wanted else set()
    return [Problem("unknown_reference", f"data.{name}: " + t(f"definition.unknown_reference.{source}", id=item),
                    node_id=node_id, field=f"data.{name}")
            for node_id, name, source, item in references if item not in known[source]]


def _check(session: Session | None, workspace_id: int, definition: Any) -> ValidationReport:
    """``validate_definition``'s report plus the ``unknown_reference`` problems (a session is opened when none is
    given and the definition names ids at all)."""
    report = validate_definition(definition)
    references = _references(definition)
    if not references:
        return report
    if session is None:
        with session_scope() as own:
            foreign = _foreign(own, workspace_id, references)
    else:
        foreign = _foreign(session, workspace_id, references)
    return ValidationReport((*report.errors, *foreign)) if foreign else report


def validate(actor: Actor, definition: Any) -> ValidationReport:
    """Every problem of a definition, as publishing would find them: ``validate_definition``'s, and the team,
    person and number ids it names that are not of the actor's workspace (``unknown_reference``)."""
    return _check(None, actor.workspace_id, definition)


def save_draft(actor: Actor, funnel_id: int, definition: dict[str, Any]) -> ValidationReport:
    """Store the draft as it is (a draft may be unfinished) and return its validation report (``validate``).

    Text PostgreSQL cannot hold is cleaned (``workbench.store.text.clean_json``).

    Raises:
        InvalidInput: a number no database holds (infinite or NaN), or nesting too deep to store.
    """
    actor.require(*EDITORS)
    definition = clean_json(definition)
    with session_scope() as session:
        _get(session, actor, funnel_id).draft = definition
        return _check(session, actor.workspace_id, definition)


def publish(actor: Actor, funnel_id: int) -> int:
    """Freeze the draft as a new version; refused with every problem listed (``validate``) when it has any."""
    actor.require(*EDITORS)
    with session_scope() as session:
        funnel = _get(session, actor, funnel_id)
        report = _check(session, actor.workspace_id, funnel.draft)
        if not report.is_valid:
            raise InvalidInput("invalid funnel", key="error.funnel_invalid", count=len(report.errors))
        number = (session.scalar(select(func.max(FunnelVersion.version)).where(
            FunnelVersion.funnel_id == funnel.id)) or 0) + 1
        version = FunnelVersion(funnel_id=funnel.id, version=number, definition=funnel.draft,
                                published_by=actor.user_id, published_at=now())
        session.add(version)
        session.flush()
        funnel.published_version_id = version.id
    runs.clear_cache()
    return number


def discard_draft(actor: Actor, funnel_id: int) -> None:
    """Throw the draft away and start again from the published version."""
    actor.require(*EDITORS)
    with session_scope() as session:
        funnel = _get(session, actor, funnel_id)
        if funnel.published_version_id is None:
            raise Conflict("nothing published", key="error.funnel_unpublished")
        funnel.draft = session.scalar(select(FunnelVersion.definition).where(
            FunnelVersion.id == funnel.published_version_id))


def set_active(actor: Actor, funnel_id: int, active: bool) -> None:
    """Switch a funnel on or off; only a published funnel can be switched on."""
    actor.require(*EDITORS)
    with session_scope() as session:
        funnel = _get(session, actor, funnel_id)
        if active and funnel.published_version_id is None:
            raise Conflict("publish first", key="error.funnel_unpublished")
        funnel.is_active = active
    runs.clear_cache()


def duplicate(actor: Actor, funnel_id: int) -> int:
    """A copy of the funnel's draft, inactive and unpublished."""
    actor.require(*EDITORS)
    with session_scope() as session:
        source = _get(session, actor, funnel_id)
        copy = Funnel(workspace_id=actor.workspace_id, name=t("funnels.copy_name", name=source.name)[:120],
                      draft=source.draft, description=source.description, priority=source.priority,
                      created_by=actor.user_id)
        session.add(copy)
        session.flush()
        return copy.id


def delete_funnel(actor: Actor, funnel_id: int) -> None:
    """Delete a funnel with its versions, runs and events (the messages it sent stay in the history)."""
    actor.require(*EDITORS)
    with session_scope() as session:
        session.delete(_get(session, actor, funnel_id))
    runs.clear_cache()


def export_funnel(actor: Actor, funnel_id: int) -> str:
    """The draft as JSON, to download."""
    actor.require(*EDITORS)
    with session_scope() as session:
        return export_json(_get(session, actor, funnel_id).draft)


def import_funnel(actor: Actor, name: str, text: str | bytes) -> int:
    """A new funnel from exported JSON (malformed JSON is refused with a clear message).

    The definition is stored as a draft even when it does not validate yet, so it can be fixed and published
    later; only text that cannot be read as ``{nodes, edges}`` is refused.

    Raises:
        PermissionDenied: the actor may not edit funnels (checked before the file is read).
        InvalidInput: unreadable JSON (``error.funnel_import`` with the reason) or a bad name.
    """
    actor.require(*EDITORS)
    return create_funnel(actor, name, _read_json(text))


def import_draft(actor: Actor, funnel_id: int, text: str | bytes) -> ValidationReport:
    """Replace a funnel's draft with exported JSON and return the new draft's validation report.

    The way to edit a funnel until the canvas editor exists: export, change the JSON, import it back into
    the same funnel, so its published versions, runs and counts stay with it. Nothing goes live until the
    draft is published.

    Raises:
        PermissionDenied: the actor may not edit funnels (checked before the file is read).
        InvalidInput: unreadable JSON (``error.funnel_import`` with the reason).
        NotFound: no such funnel in the actor's workspace.
    """
    actor.require(*EDITORS)
    return save_draft(actor, funnel_id, _read_json(text))


def _read_json(text: str | bytes) -> dict[str, Any]:
    try:
        return import_json(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), key="error.funnel_import", reason=str(exc)) from exc


def install_examples(session: Session, workspace_id: int, user_id: int | None = None) -> list[int]:
    """Create the example funnels (published and active) in a workspace — used for the demo."""
    ids = []
    for name, build in EXAMPLES.values():
        definition = build()
        funnel = Funnel(workspace_id=workspace_id, name=name, draft=definition, is_active=True,
                        created_by=user_id)
        session.add(funnel)
        session.flush()
        version = FunnelVersion(funnel_id=funnel.id, version=1, definition=definition, published_by=user_id)
        session.add(version)
        session.flush()
        funnel.published_version_id = version.id
        ids.append(funnel.id)
    return ids


def contact_runs(actor: Actor, contact_id: int) -> list[dict[str, Any]]:
    """The contact's funnel runs, newest first: funnel, node, status (for the contact panel)."""
    with session_scope() as session:
        # only runs of conversations the actor sees in the inbox (an agent's view is limited there)
        seen = conversations.visible(actor, select(Conversation.id))
        rows = session.execute(select(FunnelRun, Funnel.name).join(Funnel, Funnel.id == FunnelRun.funnel_id).where(
            FunnelRun.contact_id == contact_id, FunnelRun.workspace_id == actor.workspace_id,
            FunnelRun.conversation_id.in_(seen),
        ).order_by(FunnelRun.id.desc()).limit(20)).all()
        return [{"id": run.id, "funnel": name, "status": run.status, "node": run.current_node,
                 "started_at": run.started_at, "deadline": run.wait_deadline, "error": run.error}
                for run, name in rows]


def stop_contact_run(actor: Actor, run_id: int) -> None:
    """Stop a contact's live run (any role that sees the conversation may stop the bot talking).

    Raises:
        NotFound: no such run in the actor's workspace, or its conversation is not visible to the actor
            (an agent's view is limited the same way as in the inbox).
        Conflict: the run already ended (completed, failed or stopped) before the click.
    """
    with session_scope() as session:
        conversation_id = session.scalar(select(FunnelRun.conversation_id).where(
            FunnelRun.id == run_id, FunnelRun.workspace_id == actor.workspace_id))
    if conversation_id is None:
        raise NotFound("run", key="error.run_not_found")
    try:
        conversations.get_conversation(actor, conversation_id)  # the inbox's visibility rules, in one place
    except NotFound:
        raise NotFound("run", key="error.run_not_found") from None
    with session_scope() as session:
        # Lock so a reply being processed right now cannot move the run on between this check and the stop.
        run = session.scalars(select(FunnelRun).where(FunnelRun.id == run_id).with_for_update()).first()
        if run is None:  # its funnel was deleted in between
            raise NotFound("run", key="error.run_not_found")
        if run.status not in runs.LIVE:
            raise Conflict("run ended", key="error.run_not_live")
        runs.stop_run(session, run_id, f"stopped by {actor.email}")
    # After commit, like every other change: open inboxes re-read and show the run as stopped.
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])


def startable_funnels(actor: Actor) -> list[dict[str, Any]]:
    """Active, published funnels an agent may start by hand for a conversation: id and name."""
    with session_scope() as session:
        rows = session.execute(select(Funnel.id, Funnel.name).where(
            Funnel.workspace_id == actor.workspace_id, Funnel.is_active.is_(True),
            Funnel.published_version_id.is_not(None)).order_by(Funnel.name)).all()
    return [{"id": fid, "name": name} for fid, name in rows]


def start_for_conversation(actor: Actor, conversation_id: int, funnel_id: int) -> None:
    """Start a funnel by hand for a conversation ("Iniciar funil" in the inbox); the live run is replaced.

    Starting a funnel hands the conversation back to the bot, so a pause is lifted first.

    Raises:
        AfterCommit: the run is saved and started; what it sends waits for Redis (the sweep re-publishes it).
    """
    conversations.get_conversation(actor, conversation_id)  # visibility rules of the inbox
    with session_scope() as session:
        funnel = _get(session, actor, funnel_id)
        if not funnel.is_active or funnel.published_version_id is None:
            raise Conflict("not active", key="error.funnel_not_startable")
        conv = session.scalars(select(Conversation).where(Conversation.id == conversation_id)
                               .with_for_update()).one()
        conv.bot_paused, conv.bot_paused_reason, conv.bot_paused_until, conv.bot_paused_by = False, None, None, None
        target = ConversationRef.of(conv, session.get(Contact, conv.contact_id))
        runs.clear_cache()  # the funnel may have been activated a moment ago in this process
        effects = runs.start_manual(session, target, funnel_id)
    with after_commit():
        client = get_redis()
        runs.publish_effects(client, effects, [actor.workspace_id])
