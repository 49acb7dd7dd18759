"""The funnel runtime: durable runs in PostgreSQL driven by the pure engine (``engine.core.definition.walk``).

A run lives in ``funnel_runs`` (current node, variables, status, wait token and deadline). Everything a
walk decides is applied in the caller's transaction: outbound messages through the outbox, tags, contact
fields, notifications, routing, one ``funnel_events`` row per node execution. Timers (delays and reply
timeouts) are RQ jobs scheduled after commit that carry the run's wait token, so a stale job does nothing;
the sweep re-schedules overdue ones after a Redis loss.

Concurrency: inbound messages of one conversation are handled by one drain job at a time (its contact's inbound
lane; other contacts of the number may be handled at once by other workers), and timer jobs and
outside call results (``on_call_result``, from the calls pool) take the run's row lock (``FOR UPDATE``), so a
run is never walked by two workers at once.

Outside calls: a step's ``CallOutside`` becomes an ``outside_calls`` row written in the walk's transaction with
the run's wait token; ``publish_effects`` hands its id to the calls pool (``enqueue_calls``), and its result comes
back through ``on_call_result`` (docs/architecture.md, "Outside calls").

Chains: a funnel may start others within the same event — a go-to-funnel step, or an add-tag step whose
tag is another funnel's ``tag_added`` trigger. Such chains stop at ``MAX_CHAIN`` funnels per incoming event
(message, timer, tag added by an agent), so funnels that tag each other cannot loop forever.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, Retry
from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, make_transient_to_detached

from connector.contracts import CONTROL_LIST, ControlCommand, MediaRef, OutboundCommand
from engine.core.definition import FunnelDefinition, Walk, load_definition, walk
from engine.core.matching import TriggerEvent, pick_trigger
from engine.core.nodes import ab_split
from engine.core.nodes.base import (
    AddTag,
    CallOutside,
    ExecutionContext,
    HistoryEntry,
    Notify,
    RemoveTag,
    Route,
    SendMedia,
    SendPoll,
    SendText,
    SetContactField,
    StartFunnel,
)
from workbench.base.clock import DEFAULT_TIMEZONE, now
from workbench.base.errors import InvalidInput
from workbench.base.i18n import error_text, t
from workbench.services import contact_fields, entry_links, routing
from workbench.services.conversation_ref import ConversationRef
from workbench.services.outbox import Draft, queue_bot_messages
from workbench.services.outbox import publish as publish_commands
from workbench.store import live
from workbench.store.db import HotStatement, held_rows, write_held, write_rows
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactTag,
    Conversation,
    Funnel,
    FunnelEvent,
    FunnelRun,
    FunnelVersion,
    Media,
    Message,
    Notification,
    OutsideCall,
    Tag,
    Team,
    Workspace,
    WorkspaceMember,
    is_row_id,
)
from workbench.store.text import (
    CONTACT_FIELD_KEY,
    MAX_CONTACT_FIELD_CHARS,
    MAX_CONTACT_FIELDS,
    MAX_CONTACT_NAME_CHARS,
    clean_json,
    clean_text,
)

log = logging.getLogger(__name__)

LIVE = ("active", "waiting", "paused")
TIMER_JOB = "engine.worker.jobs.funnel_timer"
EMAIL_JOB = "engine.worker.jobs.email_notification"
EMAIL_RETRY_INTERVALS = (30, 120, 600)
"""An e-mail whose send failed is tried again after 30 s, 2 and 10 minutes."""
TIMER_QUEUE = "default"
CALLS_QUEUE = "wb:calls"
"""Redis sorted set of outside call ids scored by when their try is due (ms); the calls pool takes due ones.
The rows in ``outside_calls`` are the truth: the sweep puts back ids this set lost."""
CALLS_WAKE = "wb:calls:wake"
"""Redis list the calls pool blocks on while nothing is due: ``enqueue_calls`` pushes to it after queueing."""
HISTORY_MESSAGES = 10
MAX_CHAIN = 5
"""Funnels one incoming event may start through other funnels (go-to steps, add-tag triggers); more are cut."""


@dataclass(frozen=True, slots=True)
class ActiveVersion:
    """An active funnel of a workspace at its published version (what messages and tags may start)."""

    funnel_id: int
    name: str
    version_id: int
    definition: FunnelDefinition


@dataclass(frozen=True, slots=True)
class FunnelStart:
    """Where a new run starts: a matched trigger (or a manual start) of an active funnel's published version."""

    version: ActiveVersion
    node_id: str


# Published versions change rarely; workers re-read the active set at most this often per workspace.
_CACHE_TTL_S = 5.0
_versions: dict[int, tuple[float, list[ActiveVersion]]] = {}
_timezones: dict[int, tuple[float, str]] = {}
_field_type_cache: dict[int, tuple[float, dict[str, str]]] = {}


@dataclass
class Effects:
    """What to do after the transaction commits."""

    commands: list[OutboundCommand] = field(default_factory=list)
    timers: list[tuple[int, str, datetime]] = field(default_factory=list)  # run id, wait token, when
    reads: list[tuple[int, ControlCommand]] = field(default_factory=list)  # (instance id, read receipt)
    calls: list[int] = field(default_factory=list)  # outside calls to hand to the calls pool
    emails: list[int] = field(default_factory=list)  # notifications to e-mail (workbench/services/mail.py)

    def extend(self, other: Effects) -> None:
        """Add another walk's effects."""
        self.commands.extend(other.commands)
        self.timers.extend(other.timers)
        self.reads.extend(other.reads)
        self.calls.extend(other.calls)
        self.emails.extend(other.emails)


def clear_cache() -> None:
    """Forget cached published versions, time zones and field types (after publishing, and in tests)."""
    _versions.clear()
    _version_cache.clear()
    _timezones.clear()
    _field_type_cache.clear()


def active_versions(session: Session, workspace_id: int) -> list[ActiveVersion]:
    """The workspace's active, published funnels, highest priority first (cached for a few seconds)."""
    hit = _versions.get(workspace_id)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    rows = session.execute(
        select(Funnel.id, Funnel.name, FunnelVersion.id, FunnelVersion.definition)
        .join(FunnelVersion, FunnelVersion.id == Funnel.published_version_id)
        .where(Funnel.workspace_id == workspace_id, Funnel.is_active.is_(True))
        .order_by(Funnel.priority.desc(), Funnel.id)
    ).all()
    loaded = []
    for funnel_id, name, version_id, definition in rows:
        try:
            loaded.append(ActiveVersion(funnel_id, name, version_id, load_definition(definition)))
        except ValueError:
            log.error("published version %s of funnel %s does not load; skipped", version_id, funnel_id)
    _versions[workspace_id] = (time.monotonic() + _CACHE_TTL_S, loaded)
    return loaded


def on_message(session: Session, conversation: ConversationRef, text: str | None) -> Effects | None:
    """A contact's new message: resume its waiting run, or start the funnel whose trigger matches.

    Returns None when no funnel took the message (the default reply may answer then).
    """
    # Entry links: attribution happens whoever has the conversation; their codes never reach keyword matching.
    matched_text, link_id = entry_links.read_message(session, conversation, text)
    if link_id is not None:
        conversation = replace(conversation, contact_created=False)  # the row now holds source fields to read
    if _bot_paused(session, conversation):
        return Effects()  # a human has the conversation: store only
    # a contact created by this very message cannot be in a funnel yet, and the statement that stored the message
    # may have seen that no run is live: no need to look then
    run = None if conversation.contact_created or conversation.no_live_run else _live_run(session, conversation.id)
    if run is not None and run.status == "waiting":
        event = TriggerEvent(kind="message", text=matched_text or "", instance_id=conversation.instance_id,
                             is_new_contact=conversation.first_message, run_active=True, entry_link_id=link_id)
        restart = _match(session, conversation, event)
        if restart is None:
            return _resume(session, run, conversation, text or "")
        _stop(session, run, "restarted by trigger")
        return _start(session, conversation, restart, text)
    event = TriggerEvent(kind="message", text=matched_text or "", instance_id=conversation.instance_id,
                         is_new_contact=conversation.first_message, run_active=run is not None,
                         entry_link_id=link_id)
    match = _match(session, conversation, event)
    if match is None:
        return Effects() if run is not None else None  # a run in a delay keeps the contact
    if run is not None:
        _stop(session, run, "restarted by trigger")
    return _start(session, conversation, match, text)


def start_manual(session: Session, conversation: ConversationRef, funnel_id: int) -> Effects:
    """An agent starts a funnel by hand for a conversation (stops the live run, if any)."""
    return _start_funnel(session, conversation, funnel_id, 0)


def on_tag_added(session: Session, conversation: ConversationRef, tag: str) -> Effects:
    """A tag was newly put on the contact: start the funnel whose ``tag_added`` trigger matches.

    The rules of messages apply: a paused bot starts nothing, and a live run is interrupted only by a
    trigger with ``restart_running``. Call it in the transaction that added the tag.
    """
    return _on_tag_added(session, conversation, tag, 0)


def tag_contact(session: Session, workspace_id: int, contact_id: int, name: str) -> tuple[str, bool]:
    """Put a tag on a contact: (the tag's name as stored, whether the contact did not carry it yet).

    The workspace tag of that name is reused whatever its case ("VIP" for "vip"), else created.
    """
    tag_id, stored = _tag(session, workspace_id, name)
    added = session.execute(pg_insert(ContactTag).values(contact_id=contact_id, tag_id=tag_id)
                            .on_conflict_do_nothing().returning(ContactTag.tag_id)).scalar_one_or_none()
    return stored, added is not None


def untag_contact(session: Session, workspace_id: int, contact_id: int, name: str) -> bool:
    """Take a tag (any case) off a contact; False when the contact did not carry it."""
    removed = session.execute(delete(ContactTag).where(
        ContactTag.contact_id == contact_id,
        ContactTag.tag_id.in_(select(Tag.id).where(Tag.workspace_id == workspace_id,
                                                   func.lower(Tag.name) == func.lower(name))),
    ).returning(ContactTag.tag_id)).first()
    return removed is not None


def on_timer(session: Session, run_id: int, token: str) -> Effects:
    """A delay or reply timeout came due. Stale tokens and paused conversations do nothing."""
    run = session.scalars(select(FunnelRun).where(FunnelRun.id == run_id).with_for_update()).first()
    if run is None or run.status != "waiting" or run.wait_token != token:
        return Effects()  # the run moved on (a reply arrived, it was stopped, or a newer timer exists)
    conversation = _conversation(session, run.conversation_id)
    if _bot_paused(session, conversation):
        return Effects()  # timers wait while a human has the conversation; after resuming, the sweep re-schedules
    funnel = session.get(Funnel, run.funnel_id)
    defn = _version_definition(session, run.version_id)
    ctx = _context(session, conversation, run, funnel.name, None)
    return _apply(session, run, conversation, funnel.id, defn, walk(defn, ctx, run.current_node, timed_out=True))


def on_call_result(session: Session, call: OutsideCall, event_data: dict[str, Any]) -> tuple[str, Effects]:
    """An outside call finished: hand its result to the node that made it, under the run's row lock.

    Returns (``applied`` | ``stale`` | ``held``, effects). ``stale``: the run moved on since the call was made
    (another reply re-entered the step with a new call, a timeout, a stop): nothing is applied. ``held``: a
    human has the conversation; the result waits (the sweep applies it once the bot is back, as for timers).
    ``event_data`` (service, attempts, latency, model, tokens...) goes into the node's funnel event.
    """
    run = session.scalars(select(FunnelRun).where(FunnelRun.id == call.run_id).with_for_update()).first()
    if (run is None or run.status != "waiting" or run.wait_token != call.wait_token
            or run.current_node != call.node_id):
        return "stale", Effects()
    conversation = _conversation(session, run.conversation_id)
    if _bot_paused(session, conversation):
        return "held", Effects()
    funnel = session.get(Funnel, run.funnel_id)
    defn = _version_definition(session, run.version_id)
    ctx = _context(session, conversation, run, funnel.name, run.variables.get("__trigger"))
    result = walk(defn, ctx, run.current_node, call_result=dict(call.result or {}))
    return "applied", _apply(session, run, conversation, funnel.id, defn, result, event_data=event_data)


def due_timers(session: Session, older_than_s: int = 30) -> list[tuple[int, str, datetime]]:
    """Waiting runs whose deadline passed a while ago (their timer job was lost): re-schedule them, longest
    overdue first.

    Runs of conversations whose bot is paused are left out: their timer job came due and waits for the bot
    (``on_timer``); once it is resumed they are due here again and fire. Re-queuing them meanwhile would only
    wake every open inbox on each sweep.
    """
    rows = session.execute(
        select(FunnelRun.id, FunnelRun.wait_token, FunnelRun.wait_deadline)
        .join(Conversation, Conversation.id == FunnelRun.conversation_id)
        .where(FunnelRun.status == "waiting", FunnelRun.wait_token.is_not(None),
               FunnelRun.wait_deadline < now() - timedelta(seconds=older_than_s),
               or_(Conversation.bot_paused.is_(False), Conversation.bot_paused_until <= now()))
        .order_by(FunnelRun.wait_deadline).limit(1000)).all()
    return [(run_id, token, when) for run_id, token, when in rows]


def stop_run(session: Session, run_id: int, reason: str) -> None:
    """Stop a live run (an agent's "stop funnel" on the contact)."""
    run = session.scalars(select(FunnelRun).where(FunnelRun.id == run_id).with_for_update()).first()
    if run is not None and run.status in LIVE:
        _stop(session, run, reason)


# -- internals ------------------------------------------------------------------------------------------------

def _bot_paused(session: Session, conversation: ConversationRef) -> bool:
    if conversation.known_unpaused:
        return False
    conv = session.get(Conversation, conversation.id)
    if not conv.bot_paused:
        return False
    if conv.bot_paused_until is not None and conv.bot_paused_until <= now():
        conv.bot_paused, conv.bot_paused_reason, conv.bot_paused_until, conv.bot_paused_by = False, None, None, None
        return False
    return True


def _live_run(session: Session, conversation_id: int) -> FunnelRun | None:
    return session.scalars(select(FunnelRun).where(
        FunnelRun.conversation_id == conversation_id, FunnelRun.status.in_(LIVE),
    ).order_by(FunnelRun.id.desc()).with_for_update()).first()


def _match(session: Session, conversation: ConversationRef, event: TriggerEvent) -> FunnelStart | None:
    versions = {v.funnel_id: v for v in active_versions(session, conversation.workspace_id)}
    candidates = [c for v in versions.values() for c in v.definition.trigger_candidates(v.funnel_id)]
    match = pick_trigger(candidates, event)
    if match is None:
        return None
    return FunnelStart(versions[match.candidate.funnel_id], match.candidate.node_id)


def _on_tag_added(session: Session, conversation: ConversationRef, tag: str, depth: int) -> Effects:
    if _bot_paused(session, conversation):
        return Effects()
    run = _live_run(session, conversation.id)
    event = TriggerEvent(kind="tag_added", tag=tag, instance_id=conversation.instance_id,
                         run_active=run is not None)
    match = _match(session, conversation, event)
    if match is None:
        return Effects()
    if run is not None:
        _stop(session, run, "restarted by trigger")
    return _start(session, conversation, match, None, depth)


def _start_funnel(session: Session, conversation: ConversationRef, funnel_id: int, depth: int) -> Effects:
    for version in active_versions(session, conversation.workspace_id):
        if version.funnel_id == funnel_id:
            run = _live_run(session, conversation.id)
            if run is not None:
                _stop(session, run, "replaced by a manual start")
            start = FunnelStart(version, version.definition.start_node().id)
            return _start(session, conversation, start, None, depth)
    raise LookupError(f"funnel {funnel_id} is not active and published")


def _start(session: Session, conversation: ConversationRef, start: FunnelStart, text: str | None,
           depth: int = 0) -> Effects:
    version = start.version
    run = FunnelRun(workspace_id=conversation.workspace_id, funnel_id=version.funnel_id,
                    version_id=version.version_id, conversation_id=conversation.id,
                    contact_id=conversation.contact_id, status="active", current_node=start.node_id,
                    variables=_earlier_assignments(session, conversation, version), attempts=0)
    # inserted by _apply once the walk is done (_insert_run)
    ctx = _context(session, conversation, run, version.name, text)
    return _apply(session, run, conversation, version.funnel_id, version.definition,
                  walk(version.definition, ctx, start.node_id), depth)


def _earlier_assignments(session: Session, conversation: ConversationRef, version: ActiveVersion) -> dict[str, Any]:
    """The run variables a new run starts with: the contact's Teste A/B branches in this funnel version, from the
    funnel events of its earlier runs (the first branch each step gave it), so a restart keeps them."""
    if conversation.contact_created or not any(n.type == "ab_split" for n in version.definition.nodes):
        return {}
    rows = session.execute(
        select(FunnelEvent.node_id, FunnelEvent.output)
        .join(FunnelRun, FunnelRun.id == FunnelEvent.run_id)
        .where(FunnelRun.contact_id == conversation.contact_id, FunnelRun.version_id == version.version_id,
               FunnelEvent.node_type == "ab_split", FunnelEvent.output.is_not(None))
        .order_by(FunnelEvent.id.desc()).limit(100)).all()
    held = {node_id: output for node_id, output in rows}  # oldest last, so the first assignment wins
    return {ab_split.ASSIGNMENTS_VAR: held} if held else {}


def _resume(session: Session, run: FunnelRun, conversation: ConversationRef, text: str) -> Effects:
    funnel = session.get(Funnel, run.funnel_id)
    defn = _version_definition(session, run.version_id)  # the version the run started on, even if republished
    ctx = _context(session, conversation, run, funnel.name, run.variables.get("__trigger"))
    result = walk(defn, ctx, run.current_node, reply=text)
    if result.status == "ignored":
        return Effects()
    return _apply(session, run, conversation, funnel.id, defn, result)


_VERSIONS_KEPT = 256
_version_cache: dict[int, FunnelDefinition] = {}


def _version_definition(session: Session, version_id: int) -> FunnelDefinition:
    """A published version's definition, parsed once per process: versions never change once written, and every
    reply, timer and outside call result of a waiting run would parse it again."""
    defn = _version_cache.get(version_id)
    if defn is None:
        defn = load_definition(session.get(FunnelVersion, version_id).definition)
        if len(_version_cache) >= _VERSIONS_KEPT:
            _version_cache.pop(next(iter(_version_cache)))
        _version_cache[version_id] = defn
    return defn


def _stop(session: Session, run: FunnelRun, reason: str) -> None:
    run.status, run.error, run.ended_at, run.wait_token, run.wait_deadline = "stopped", reason, now(), None, None


def _conversation(session: Session, conversation_id: int) -> ConversationRef:
    conv = session.get(Conversation, conversation_id)
    return ConversationRef.of(conv, session.get(Contact, conv.contact_id))


def _context(session: Session, conversation: ConversationRef, run: FunnelRun, funnel_name: str,
             trigger_text: str | None) -> ExecutionContext:
    if conversation.contact_created:
        # created by this very message: no name, fields or tags yet, and one message of history
        contact = {"name": conversation.push_name, "phone": conversation.phone, "custom_data": {}, "tags": []}
        recent = [("in", trigger_text)] if trigger_text else []
    else:
        row = session.get(Contact, conversation.contact_id)
        tags = session.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                               .where(ContactTag.contact_id == row.id)).all()
        contact = {"name": row.name or row.push_name, "phone": row.phone, "custom_data": row.custom_data or {},
                   "tags": list(tags)}
        recent = session.execute(select(Message.direction, Message.text).where(
            Message.conversation_id == conversation.id, Message.text.is_not(None),
        ).order_by(Message.id.desc()).limit(HISTORY_MESSAGES)).all()
    variables = dict(run.variables or {})
    if trigger_text is not None:
        variables.setdefault("__trigger", trigger_text)
    return ExecutionContext(
        now=now(), variables=variables, funnel_name=funnel_name,
        timezone=_workspace_timezone(session, conversation.workspace_id), contact=contact,
        field_types=_field_types(session, conversation.workspace_id),
        trigger_message=variables.get("__trigger"), attempts=run.attempts,
        history=[HistoryEntry(d, t) for d, t in reversed(recent)],
    )


def _apply(session: Session, run: FunnelRun, conversation: ConversationRef, funnel_id: int,
           defn: FunnelDefinition, result: Walk, depth: int = 0, event_data: dict[str, Any] | None = None) -> Effects:
    """Apply a walk's actions and events, and store where the run stands.

    ``depth`` counts the funnels that started this one within the current event (see ``MAX_CHAIN``).
    ``event_data`` is added to the first step's funnel event (an outside call's figures).

    A ``call`` wait returned without a new ``CallOutside`` (a reply arrived while the node's call is pending)
    keeps the run's wait token and deadline, so the pending call's result still applies; any other wait gets a
    new token, which makes older timers and calls stale.
    """
    effects = Effects()
    was_waiting_on = run.current_node if run.status == "waiting" and run.wait_token else None
    run.variables = dict(result.context.variables)
    run.current_node = result.node_id
    run.updated_at = now()
    new_call = any(isinstance(a, CallOutside) for a in result.actions)
    timer = False
    if result.status == "waiting":
        run.status = "waiting"
        run.attempts = result.wait.attempts
        if not (result.wait.kind == "call" and not new_call and was_waiting_on == result.node_id):
            run.wait_deadline = result.wait.deadline(now())
            run.wait_token = secrets.token_hex(8) if run.wait_deadline or new_call else None
            timer = run.wait_deadline is not None
    else:
        run.status = "completed" if result.status == "completed" else "failed"
        run.error = result.error
        run.ended_at, run.wait_token, run.wait_deadline = now(), None, None
    # A new run is inserted here with where the walk left it (one statement, no insert-then-update), or held with
    # an inbound batch's rows; its id is what the events below refer to, and what its timer job names.
    if run.id is None:
        _insert_run(session, run, conversation.phone)
    session.flush()
    if timer:
        effects.timers.append((run.id, run.wait_token, run.wait_deadline))
    start_next: int | None = None
    added: list[str] = []
    events: list[dict[str, Any]] = []  # the funnel_events rows of the steps
    drafts: list[Draft] = []  # the walk's messages, queued together after the steps
    for step in result.steps:
        notes: list[str] = []  # what applying the step's actions adds to its log
        for action in step.result.actions:
            if isinstance(action, AddTag):
                # applied here rather than in _apply_action: a tag new to the contact may start other funnels
                name, new = tag_contact(session, run.workspace_id, run.contact_id, action.name)
                if new:
                    added.append(name)
                    _record(session, run, "tag_added", {"tag": name})
                continue
            if isinstance(action, SetContactField):
                note = _set_contact_field(session, run, action)
                if note:
                    notes.append(note)
                continue
            if isinstance(action, CallOutside):
                effects.calls.append(_insert_call(session, run, step.node_id, action))
                continue
            if isinstance(action, Notify):
                notification = _notify(session, run, conversation, action)
                if action.email:
                    session.flush()
                    effects.emails.append(notification.id)
                continue
            if isinstance(action, SendText | SendPoll | SendMedia):
                draft = _draft(session, run, funnel_id, step.node_id, action)
                if draft is not None:
                    drafts.append(draft)
                continue
            _apply_action(session, run, conversation, action)
            if isinstance(action, StartFunnel):
                start_next = action.funnel_id
        events.append({
            "node_id": step.node_id, "node_type": step.node_type, "output": step.result.output,
            "status": "error" if step.result.error else ("waiting" if step.result.wait else "ok"),
            "duration_ms": step.duration_ms, "error": step.result.error,
            "data": {**dict(step.result.data), **({"log": [*step.result.log, *notes]} if step.result.log or notes
                                                  else {}), **(event_data or {})},
        })
        event_data = None  # the call's figures belong to the step that received its result
    # The walk's messages (a greeting and a menu) in the steps' order, and its steps, each kind in one statement, or
    # with the rest of an inbound batch's (``db.hold_rows``). As ORM objects the steps cost a third of a new lead's
    # time in the worker, and as SQLAlchemy's multi-row insert (psycopg's executemany) a seventh.
    effects.commands.extend(queue_bot_messages(session, conversation, drafts))
    if events:
        write_rows(session, _INSERT_EVENTS, [{**event, "workspace_id": run.workspace_id, "run_id": run.id,
                                              "funnel_id": run.funnel_id, "version_id": run.version_id}
                                             for event in events], conversation.phone)
    go_to = start_next if result.status == "completed" else None
    if go_to is None and not added:
        return effects
    write_held(session)  # the funnels started now read the conversation (an AI node its history) as this walk left it
    if depth >= MAX_CHAIN:
        log.warning("run %s: chain of %s funnels in one event cut here (go-to %s, tags added %s not fired)",
                    run.id, depth + 1, go_to, added)
        return effects
    current = conversation.forget_event()  # funnels started now see the conversation as this walk left it
    if go_to is not None:
        try:
            effects.extend(_start_funnel(session, current, go_to, depth + 1))
        except LookupError:
            log.warning("run %s: go-to funnel %s is not active", run.id, go_to)
    # After the go-to: a funnel it started is live, so only restart_running tag triggers interrupt it.
    for tag in added:
        effects.extend(_on_tag_added(session, current, tag, depth + 1))
    return effects


_RUN_COLUMNS = {"workspace_id": "bigint", "funnel_id": "bigint", "version_id": "bigint", "conversation_id": "bigint",
                "contact_id": "bigint", "status": "text", "current_node": "text", "variables": "jsonb",
                "wait_token": "text", "wait_deadline": "timestamptz", "attempts": "integer", "error": "text",
                "updated_at": "timestamptz", "ended_at": "timestamptz"}
_INSERT_RUN = HotStatement(text(f"""
INSERT INTO funnel_runs ({", ".join(_RUN_COLUMNS)}) VALUES ({", ".join(f":{name}" for name in _RUN_COLUMNS)})
RETURNING id
"""))
# New runs of an inbound batch, with the ids reserved for them (_NEW_RUN_IDS), as one statement (``db.hold_rows``).
_INSERT_RUNS = HotStatement(text(f"""
INSERT INTO funnel_runs (id, {", ".join(_RUN_COLUMNS)})
SELECT run.id, {", ".join(f"run.{name}" for name in _RUN_COLUMNS)}
FROM jsonb_to_recordset(:rows)
     AS run(id bigint, {", ".join(f"{name} {kind}" for name, kind in _RUN_COLUMNS.items())})
""").bindparams(bindparam("rows", type_=JSONB)))
_NEW_RUN_IDS = HotStatement(text(
    "SELECT nextval(pg_get_serial_sequence('funnel_runs', 'id')) FROM generate_series(1, :n)"))

# Walks' funnel events, one row per step, in step order (the steps as one jsonb document, as the walks' messages).
_INSERT_EVENTS = HotStatement(text("""
INSERT INTO funnel_events (workspace_id, run_id, funnel_id, version_id, node_id, node_type, output, status,
                           duration_ms, error, data)
SELECT step.workspace_id, step.run_id, step.funnel_id, step.version_id, step.node_id, step.node_type, step.output,
       step.status, step.duration_ms, step.error, step.data
FROM jsonb_to_recordset(:rows) AS step(workspace_id bigint, run_id bigint, funnel_id bigint, version_id bigint,
                                       node_id text, node_type text, output text, status text, duration_ms integer,
                                       error text, data jsonb)
""").bindparams(bindparam("rows", type_=JSONB)))


def _insert_run(session: Session, run: FunnelRun, phone: str) -> None:
    """Insert a new run, then put it in the session as loaded, so later changes to it in the transaction are flushed
    as usual. The ORM's own flush of a new row (unit of work, insertmanyvalues) cost a fifth of a new lead's time in
    the worker.

    One INSERT … RETURNING, except for the second and later new runs of an inbound batch (``db.hold_rows``): those
    take a reserved id and their rows are held under the contact's phone, written before the batch's other held
    rows (their events refer to them) and before anything reads the contact's runs, so a new lead's run costs no
    round trip of its own (a fifth of the drain's time in a burst of new leads, ``bench/pipeline_profile.py
    --funnel``). A held run is in the session as loaded before its row exists, so nothing may change it until the
    held rows are written: its walk's changes come before this call, and whatever reads the contact's runs later in
    the batch writes the held rows first."""
    held = held_rows(session)
    run.id = held.new_id(session, _NEW_RUN_IDS) if held is not None else None
    if run.id is None:
        [(run.id,)] = _INSERT_RUN.execute(session, {name: getattr(run, name) for name in _RUN_COLUMNS})
    else:
        row = {name: getattr(run, name) for name in ("id", *_RUN_COLUMNS)}
        for name in ("wait_deadline", "updated_at", "ended_at"):
            row[name] = row[name].isoformat() if row[name] is not None else None
        held.add(_INSERT_RUNS, [row], phone, first=True)
    make_transient_to_detached(run)  # the columns not given (started_at) load when first read
    session.add(run)


def _insert_call(session: Session, run: FunnelRun, node_id: str, action: CallOutside) -> int:
    """Store an outside call in the walk's transaction; the calls pool gets its id after commit.

    It carries the run's wait token: its result applies only while the run still waits on it. A call made by
    a step that did not wait (a node bug) gets no token and its result will be stale.
    """
    write_held(session)  # the run, when held with an inbound batch's rows (_insert_run): the call refers to it
    call = OutsideCall(workspace_id=run.workspace_id, run_id=run.id, wait_token=run.wait_token or "-",
                       node_id=node_id, service=action.service, request=clean_json(dict(action.request)))
    session.add(call)
    session.flush()
    return call.id


def _notify(session: Session, run: FunnelRun, conversation: ConversationRef, action: Notify) -> Notification:
    """The in-app notification of a "Notificar humano" step (its e-mail, when asked, goes out after commit)."""
    notification = Notification(workspace_id=run.workspace_id, user_id=_own_person(session, run, action.user_id),
                                team_id=_own_team(session, run, action.team_id)
                                or _team_id(session, run.workspace_id, action.team_name),
                                conversation_id=conversation.id, body=clean_text(action.text)[0])
    session.add(notification)
    return notification


def _draft(session: Session, run: FunnelRun, funnel_id: int, node_id: str,
           action: SendText | SendPoll | SendMedia) -> Draft | None:
    """The outbound message a send step asks for (None for a media file that is not the workspace's)."""
    data = {"run": run.id, "node": node_id}
    if isinstance(action, SendText):
        return Draft(action.text, funnel_id=funnel_id, data=data, typing=action.typing)
    if isinstance(action, SendPoll):
        # The inbox shows the question with its numbered options; the command carries the poll, plus that text
        # for where a poll cannot go (see OutboundCommand.sendable_poll).
        poll = {"question": action.question, "options": list(action.options)}
        return Draft(action.fallback_text, "poll", funnel_id=funnel_id, data={**data, "poll": poll},
                     poll=(action.question, poll["options"]), typing=action.typing)
    media = session.get(Media, action.media_id) if is_row_id(action.media_id) else None
    if media is None or media.workspace_id != run.workspace_id:
        log.warning("run %s: media %s not found; skipped", run.id, action.media_id)
        return None
    ref = MediaRef(sha256=media.sha256, mime=media.mime, size=media.size, filename=media.filename)
    return Draft(action.caption, action.media_kind, ref, media.id, funnel_id, data)


def _apply_action(session: Session, run: FunnelRun, conversation: ConversationRef, action: Any) -> None:
    """Apply a step's action other than a send, a tag added, a field set, an outside call or a notification."""
    if isinstance(action, RemoveTag):
        if untag_contact(session, run.workspace_id, run.contact_id, action.name):
            _record(session, run, "tag_removed", {"tag": action.name})
    elif isinstance(action, Route):
        team_id = _own_team(session, run, action.team_id) or _team_id(session, run.workspace_id, action.team_name)
        agent_id = _own_person(session, run, action.agent_id)
        pause: dict[str, Any] = {}
        if action.pause_bot:
            until = now() + timedelta(minutes=action.pause_minutes) if action.pause_minutes else None
            pause = {"bot_paused": True, "bot_paused_reason": "route", "bot_paused_until": until,
                     "bot_paused_by": None}
        # who gets it, recorded, with the team's automatic distribution (workbench/services/routing.py); the pause
        # rides on the same update
        source = {"source": "funnel", "funnel_id": run.funnel_id, "run_id": run.id}
        if agent_id and routing.is_active(session, agent_id):
            routing.assign_agent(session, run.workspace_id, conversation.id, agent_id, team_id, None, "funnel", source,
                                 pause)
        elif team_id:
            routing.route_to_team(session, run.workspace_id, conversation.id, team_id, None, "funnel", source, pause)
        elif pause:
            session.execute(update(Conversation).where(Conversation.id == conversation.id).values(**pause))
        if action.pause_bot:
            _record(session, run, "bot_paused", {"reason": "route"}, conversation.id)
    return None


def _record(session: Session, run: FunnelRun, kind: str, data: dict[str, Any],
            conversation_id: int | None = None, source: str = "funnel") -> None:
    """What a funnel step changed, for the contact's activity feed (``workbench.services.contact_feed``): on the
    contact, or on its conversation for assignments and pauses, as the inbox's own actions record them."""
    subject = ("conversation", conversation_id) if conversation_id is not None else ("contact", run.contact_id)
    session.add(ActivityEvent(workspace_id=run.workspace_id, kind=kind, subject_type=subject[0],
                              subject_id=subject[1], data={**data, "source": source, "funnel_id": run.funnel_id,
                                                           "run_id": run.id}))


def _set_contact_field(session: Session, run: FunnelRun, action: SetContactField) -> str | None:
    """Store a set-field or wait-reply value within the contact form's rules; returns a line for the run's log
    when the value was not stored.

    A value may be a contact's whole message: a longer text is cut (``workbench/store/text.py``). A field defined
    in Configurações › Campos takes only what its type accepts (``contact_fields.coerce``): a value that does not
    fit keeps the old one and the run's log says why; the run goes on. A field the contact form would refuse (a
    bad name, one field too many) is not stored either. Sizes and field names are logged, never the text. An empty
    value removes the field.
    """
    contact = session.get(Contact, run.contact_id)
    value = action.value
    if action.field == "name":
        value = clean_text(str(value), limit=None)[0]
        if len(value) > MAX_CONTACT_NAME_CHARS:
            log.warning("run %s: contact name of %s characters cut to %s", run.id, len(value), MAX_CONTACT_NAME_CHARS)
        value = value[:MAX_CONTACT_NAME_CHARS]
        if contact.name != value:
            _record(session, run, "field_changed", {"key": "name", "old": contact.name, "new": value,
                                                    **_provenance(action)}, source=_source(action))
        contact.name = value
        return None
    key = action.field.removeprefix("custom_data.")
    fields = dict(contact.custom_data or {})
    if not CONTACT_FIELD_KEY.match(key):
        log.warning("run %s: contact field not stored: its name is not a field name", run.id)
        return None
    if key not in fields and len(fields) >= MAX_CONTACT_FIELDS:
        log.warning("run %s: contact field %s not stored: the contact has %s fields already", run.id, key,
                    len(fields))
        return None
    if isinstance(value, str) and len(value) > MAX_CONTACT_FIELD_CHARS:
        log.warning("run %s: contact field %s of %s characters cut to %s", run.id, key, len(value),
                    MAX_CONTACT_FIELD_CHARS)
        value = value[:MAX_CONTACT_FIELD_CHARS]
    definition = contact_fields.definitions(session, run.workspace_id).get(key)
    if definition is not None:
        try:
            value = contact_fields.coerce(definition, value)
        except InvalidInput as exc:
            log.info("run %s: contact field %s not stored: not a %s value", run.id, key, definition.type)
            return t("run.field_not_saved", field=key, reason=error_text(exc))
    elif isinstance(value, str) and not value.strip():
        value = None
    value = clean_json(value)
    if value == fields.get(key):
        return None
    _record(session, run, "field_changed", {"key": key, "old": fields.get(key), "new": value,
                                            **_provenance(action)}, source=_source(action))
    if value is None:
        fields.pop(key, None)
    else:
        fields[key] = value
    contact.custom_data = fields
    return None


def _provenance(action: SetContactField) -> dict[str, Any]:
    """Where a value came from (an AI step's step, model, message), kept with its change in the activity."""
    return {"provenance": clean_json(dict(action.source))} if action.source else {}


def _source(action: SetContactField) -> str:
    """The activity's source: ``ai`` for a value an AI step verified and wrote, else ``funnel``."""
    return "ai" if action.source and action.source.get("by") == "ai" else "funnel"


def _field_types(session: Session, workspace_id: int) -> dict[str, str]:
    """The workspace's contact field types, for conditions (cached like the time zone: they change rarely)."""
    hit = _field_type_cache.get(workspace_id)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    types = contact_fields.field_types(session, workspace_id)
    _field_type_cache[workspace_id] = (time.monotonic() + _CACHE_TTL_S, types)
    return types


def _workspace_timezone(session: Session, workspace_id: int) -> str:
    hit = _timezones.get(workspace_id)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    zone = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id)) or DEFAULT_TIMEZONE
    _timezones[workspace_id] = (time.monotonic() + _CACHE_TTL_S, zone)
    return zone


def _tag(session: Session, workspace_id: int, name: str) -> tuple[int, str]:
    """(id, stored name) of the workspace's tag called ``name`` in any case, created on first use."""
    name = clean_text(name, limit=80)[0]
    found = session.execute(select(Tag.id, Tag.name).where(
        Tag.workspace_id == workspace_id, func.lower(Tag.name) == func.lower(name)).order_by(Tag.id).limit(1)).first()
    if found is not None:
        return found[0], found[1]
    stmt = pg_insert(Tag).values(workspace_id=workspace_id, name=name)
    tag_id = session.execute(stmt.on_conflict_do_nothing().returning(Tag.id)).scalar_one_or_none()
    if tag_id is None:  # a concurrent transaction created it a moment ago (they meet on the unique index)
        tag_id, name = session.execute(select(Tag.id, Tag.name).where(
            Tag.workspace_id == workspace_id, func.lower(Tag.name) == func.lower(name))).one()
    return tag_id, name


def _own_team(session: Session, run: FunnelRun, team_id: int | None) -> int | None:
    """``team_id`` when it is a team of the run's workspace, else None (logged): a definition imported from
    another workspace, or published before publishing checked it, may name someone else's team."""
    if team_id is None:
        return None
    if is_row_id(team_id) and session.scalar(select(Team.id).where(
            Team.id == team_id, Team.workspace_id == run.workspace_id)) is not None:
        return team_id
    log.warning("run %s: team %s is not of workspace %s; ignored", run.id, team_id, run.workspace_id)
    return None


def _own_person(session: Session, run: FunnelRun, user_id: int | None) -> int | None:
    """``user_id`` when that user is a member of the run's workspace, else None (logged; see ``_own_team``)."""
    if user_id is None:
        return None
    if is_row_id(user_id) and session.get(WorkspaceMember, (run.workspace_id, user_id)) is not None:
        return user_id
    log.warning("run %s: user %s is not of workspace %s; ignored", run.id, user_id, run.workspace_id)
    return None


def _team_id(session: Session, workspace_id: int, name: str | None) -> int | None:
    if not name:
        return None
    return session.scalar(select(Team.id).where(Team.workspace_id == workspace_id,
                                                func.lower(Team.name) == name.lower()))


def publish_effects(client: redis.Redis, effects: Effects, workspaces: Iterable[int] = (),
                    then: Callable[[Pipeline], None] | None = None) -> None:
    """After commit: hand read receipts and outbound commands to the connectors, tell the live views of
    ``workspaces``, and schedule the timers, outside calls and e-mails.

    Everything but the e-mails (rare; RQ wants a pipeline of their own) takes one round trip. Read receipts go
    first, so the contact sees the blue ticks before "typing..." and the answer. ``then`` adds the caller's own last
    commands (the inbound drain's acknowledgement) at the end: Redis runs one connection's commands in the order
    sent, so a crash part way never leaves acknowledged events whose timers or e-mails were not queued.
    """
    enqueue_emails(client, effects.emails)
    pipe = client.pipeline(transaction=False)
    for instance_id, commands in _merged_reads(effects.reads).items():
        pipe.rpush(CONTROL_LIST.format(instance_id), *(c.model_dump_json(exclude_none=True) for c in commands))
    publish_commands(effects.commands, pipe)
    live.touch(pipe, workspaces)
    schedule_timers(client, effects.timers, pipe)
    enqueue_calls(pipe, effects.calls)
    if then is not None:
        then(pipe)
    pipe.execute()


def _merged_reads(reads: list[tuple[int, ControlCommand]]) -> dict[int, list[ControlCommand]]:
    """The read receipts of a batch as one command per chat (its message ids in order), by instance: a connector
    sends one receipt per chat instead of one per message."""
    merged: dict[int, dict[str, ControlCommand]] = {}
    for instance_id, command in reads:
        chats = merged.setdefault(instance_id, {})
        known = chats.get(command.phone or "")
        if known is None:
            chats[command.phone or ""] = command.model_copy(update={"wa_ids": list(command.wa_ids or [])})
        else:
            known.wa_ids = [*(known.wa_ids or []), *(command.wa_ids or [])]
    return {instance_id: list(chats.values()) for instance_id, chats in merged.items()}


def enqueue_emails(client: redis.Redis, notification_ids: list[int]) -> None:
    """Queue the e-mail of each notification (``engine.worker.jobs.email_notification``); call after commit.

    The job retries SMTP failures (``mail.EMAIL_RETRY_INTERVALS``); nothing of the funnel waits for it.
    """
    if not notification_ids:
        return
    queue = Queue(TIMER_QUEUE, connection=client)
    for notification_id in notification_ids:
        queue.enqueue(EMAIL_JOB, notification_id, job_timeout=120, result_ttl=0, failure_ttl=7 * 86400,
                      retry=Retry(max=len(EMAIL_RETRY_INTERVALS), interval=list(EMAIL_RETRY_INTERVALS)))


def enqueue_calls(client: redis.Redis | Pipeline, call_ids: list[int], delay_s: float = 0.0) -> None:
    """Hand outside calls to the calls pool (``engine/worker/calls.py``), due now or after ``delay_s``; call after
    commit. Adding an id already queued only moves its due time. ``client`` may be a pipeline its caller executes."""
    if call_ids:
        due = time.time() * 1000 + delay_s * 1000
        client.zadd(CALLS_QUEUE, {str(call_id): due for call_id in call_ids})
        client.rpush(CALLS_WAKE, 1)  # after the entries: the pool that wakes finds them


def schedule_timers(client: redis.Redis, timers: list[tuple[int, str, datetime]],
                    pipe: Pipeline | None = None) -> None:
    """Queue funnel timer jobs (delays, reply timeouts) for after their deadline; call after commit. With ``pipe``,
    the jobs go in it and its caller executes it (one round trip for a whole batch's timers)."""
    if not timers:
        return
    queue = Queue(TIMER_QUEUE, connection=client)
    into = pipe if pipe is not None else client.pipeline(transaction=False)
    for run_id, token, when in timers:
        queue.enqueue_at(when, TIMER_JOB, run_id, token, job_timeout=120, result_ttl=0,
                         failure_ttl=86400, retry=Retry(max=5, interval=[1, 5, 30, 60, 300]), pipeline=into)
    if pipe is None:
        into.execute()
