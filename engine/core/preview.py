"""The editor's test chat: run a draft against a simulated contact, without publishing and without a database.

Pure: every call takes the draft and the previous ``PreviewState`` and returns a new state, built with the same
``walk`` the runtime uses, on a fresh ``ExecutionContext``. Side effects are only *described*: messages become
chat entries, tags/fields/variables change the simulated contact, and routing, notifications and "go to
funnel" become notes (``PreviewEntry`` with a ``kind``) that the page words from the catalog.

The trigger is not matched: the first message typed starts the draft at its trigger, whatever it says, so a
marketer can test a funnel before its keywords are final.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from engine.core.definition import FunnelDefinition, Walk, walk
from engine.core.nodes import ab_split
from engine.core.nodes.base import (
    AddTag,
    CallOutside,
    Contact,
    ExecutionContext,
    HistoryEntry,
    Notify,
    RemoveTag,
    Route,
    SendMedia,
    SendPoll,
    SendText,
    SetContactField,
    SetVariable,
    StartFunnel,
)
from workbench.base import clock
from workbench.base.i18n import t

DEFAULT_CONTACT = {"name": None, "phone": "5511999999999", "custom_data": {}, "tags": []}
"""The simulated contact: no name yet (so "ask the name" flows behave as with a new lead)."""
MAX_HISTORY = 20


@dataclass(frozen=True)
class PreviewEntry:
    """One line of the test chat.

    Attributes:
        role: ``bot`` (a message the funnel sends), ``contact`` (what the tester typed) or ``note`` (something
            the funnel did that is not a message).
        kind: ``text``, ``poll``, ``media``, or for notes ``add_tag``, ``remove_tag``, ``set_field``,
            ``set_variable``, ``notify``, ``route``, ``start_funnel``, ``timeout``, ``completed``, ``failed``.
        text: the message text (bot/contact) or the main value of a note.
        params: extra values for the note's wording (tag name, team, field...).
    """

    role: Literal["bot", "contact", "note"]
    kind: str
    text: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewStep:
    """One node execution: which node, what it decided (output / waiting / end / error) and its log."""

    node_id: str
    node_type: str
    outcome: Literal["next", "wait", "end", "error"]
    output: str | None = None
    log: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreviewState:
    """Where the simulated run stands. Immutable; kept in the page's session state.

    Attributes:
        status: ``idle`` (not started), ``waiting``, ``completed`` or ``failed``.
        node_id: the node the run waits on (or the last node executed).
        wait_kind: ``reply`` or ``timer`` while waiting.
        can_time_out: the wait has a deadline (a reply timeout or a delay), so "tempo esgotado" applies.
        attempts: invalid replies received on the waiting node.
        variables: the run's variables.
        contact: the simulated contact (name, phone, custom_data, tags).
        entries: the chat, oldest first.
        steps: every node executed, in order.
        error: why the run failed.
        pending_call: while the run waits on an outside call (``wait_kind`` ``call``): ``service``, ``request`` and
            ``node_id`` of the call, for the page to run (a real call, clearly marked) and hand back to ``deliver``.
    """

    status: Literal["idle", "waiting", "completed", "failed"] = "idle"
    node_id: str | None = None
    wait_kind: str | None = None
    can_time_out: bool = False
    attempts: int = 0
    trigger_message: str | None = None
    last_reply: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    contact: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONTACT))
    entries: tuple[PreviewEntry, ...] = ()
    steps: tuple[PreviewStep, ...] = ()
    error: str | None = None
    pending_call: Mapping[str, Any] | None = None

    @property
    def waiting_for_reply(self) -> bool:
        """The run waits for the contact to answer (also while an outside call is pending: the step folds it)."""
        return self.status == "waiting" and self.wait_kind in ("reply", "call")

    def history(self) -> list[dict[str, str]]:
        """The chat's messages as ``{"direction", "text"}`` (what an outside call of the test chat reads)."""
        return [{"direction": "in" if e.role == "contact" else "out", "text": e.text}
                for e in self.entries if e.role in ("bot", "contact") and e.text]


def _definition(raw: Mapping[str, Any]) -> tuple[FunnelDefinition | None, str | None]:
    try:
        return FunnelDefinition.model_validate(raw), None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, t("preview.invalid", where=where, reason=first["msg"])


def _context(state: PreviewState, funnel_name: str, now: datetime,
             field_types: Mapping[str, str] | None) -> ExecutionContext:
    history = [HistoryEntry("in" if e.role == "contact" else "out", e.text)
               for e in state.entries if e.role in ("bot", "contact")][-MAX_HISTORY:]
    return ExecutionContext(now=now, variables=dict(state.variables), contact=Contact.from_dict(state.contact),
                            trigger_message=state.trigger_message, last_reply=state.last_reply,
                            funnel_name=funnel_name, history=history, attempts=state.attempts,
                            rng=random.Random(0), field_types=dict(field_types or {}))


def _entries(run: Walk) -> list[PreviewEntry]:
    entries: list[PreviewEntry] = []
    for action in run.actions:
        if isinstance(action, SendText):
            entries.append(PreviewEntry("bot", "text", action.text))
        elif isinstance(action, SendPoll):
            entries.append(PreviewEntry("bot", "poll", action.fallback_text))
        elif isinstance(action, SendMedia):
            entries.append(PreviewEntry("bot", "media", action.caption or "",
                                        {"media_kind": action.media_kind, "media_id": action.media_id}))
        elif isinstance(action, AddTag | RemoveTag):
            entries.append(PreviewEntry("note", action.kind, action.name))
        elif isinstance(action, SetContactField):
            entries.append(PreviewEntry("note", "set_field", str(action.value), {"field": action.field}))
        elif isinstance(action, SetVariable):
            entries.append(PreviewEntry("note", "set_variable", str(action.value), {"field": action.name}))
        elif isinstance(action, Notify):
            entries.append(PreviewEntry("note", "notify", action.text))
        elif isinstance(action, Route):
            who = action.team_name or action.team_id or action.agent_id or ""
            entries.append(PreviewEntry("note", "route", str(who), {"pause_bot": action.pause_bot}))
        elif isinstance(action, StartFunnel):
            entries.append(PreviewEntry("note", "start_funnel", str(action.funnel_id)))
    return entries


def _steps(run: Walk) -> list[PreviewStep]:
    steps = []
    for step in run.steps:
        result = step.result
        outcome = result.outcome
        steps.append(PreviewStep(step.node_id, step.node_type, outcome, result.output if outcome == "next" else None,
                                 tuple(result.log) + ((result.error,) if result.error else ())))
    return steps


def _apply(state: PreviewState, run: Walk, before: list[PreviewEntry]) -> PreviewState:
    ctx = run.context
    entries = [*state.entries, *before, *_entries(run)]
    if run.status == "completed":
        entries.append(PreviewEntry("note", "completed"))
    elif run.status == "failed":
        entries.append(PreviewEntry("note", "failed", run.error or ""))
    wait = run.wait if run.status == "waiting" else None
    calls = [a for a in run.actions if isinstance(a, CallOutside)]
    pending = state.pending_call if wait and wait.kind == "call" and not calls else None
    if wait and wait.kind == "call" and calls:
        pending = {"service": calls[-1].service, "request": dict(calls[-1].request), "node_id": run.node_id}
    return replace(
        state, status=run.status if run.status != "ignored" else state.status, node_id=run.node_id,
        wait_kind=wait.kind if wait else None,
        can_time_out=bool(wait and (wait.kind == "timer" or wait.timeout_s)),
        attempts=ctx.attempts if wait else 0, last_reply=ctx.last_reply, variables=dict(ctx.variables),
        contact={"name": ctx.contact.name, "phone": ctx.contact.phone, "custom_data": dict(ctx.contact.custom_data),
                 "tags": list(ctx.contact.tags)},
        entries=tuple(entries), steps=(*state.steps, *_steps(run)), error=run.error, pending_call=pending)


def _failed(state: PreviewState, error: str, before: list[PreviewEntry]) -> PreviewState:
    return replace(state, status="failed", error=error,
                   entries=(*state.entries, *before, PreviewEntry("note", "failed", error)))


def ab_split_steps(raw: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """The draft's Teste A/B steps and their branches, for the test chat's "pick the branch" boxes (none when the
    draft does not parse)."""
    defn, _ = _definition(raw)
    if defn is None:
        return []
    return [(n.id, ab_split.branch_keys(len(n.data.weights))) for n in defn.nodes  # type: ignore[attr-defined]
            if n.type == "ab_split"]  # type: ignore[attr-defined]


def start(raw: Mapping[str, Any], message: str, *, funnel_name: str = "", now: datetime | None = None,
          contact: Mapping[str, Any] | None = None, field_types: Mapping[str, str] | None = None,
          ab_picks: Mapping[str, str] | None = None) -> PreviewState:
    """A new simulated run: the contact sends ``message``, which starts the draft at its trigger.

    ``field_types`` are the workspace's contact field types (``ExecutionContext.field_types``), so conditions
    compare as in real runs. ``ab_picks`` (Teste A/B node id -> branch) are the branches the author chose for
    the simulated contact; steps without a pick draw as in real runs.
    """
    picks = {k: v for k, v in (ab_picks or {}).items() if v in ab_split.BRANCH_KEYS}
    state = PreviewState(trigger_message=message, contact=dict(contact or DEFAULT_CONTACT),
                         variables={ab_split.ASSIGNMENTS_VAR: picks} if picks else {})
    before = [PreviewEntry("contact", "text", message)]
    defn, error = _definition(raw)
    if defn is None:
        return _failed(state, error or "", before)
    trigger = defn.start_node()
    if trigger is None:
        return _failed(state, t("definition.no_start"), before)
    now = now or clock.now()
    run = walk(defn, _context(state, funnel_name, now, field_types), trigger.id)
    return _apply(state, run, before)


def send(raw: Mapping[str, Any], state: PreviewState, text: str, *, funnel_name: str = "",
         now: datetime | None = None, field_types: Mapping[str, str] | None = None,
         ab_picks: Mapping[str, str] | None = None) -> PreviewState:
    """The contact answers: start the run when idle or finished, else resume the waiting node.

    A message while a delay runs is shown but changes nothing, as in the runtime.
    """
    if state.status in ("idle", "completed", "failed"):
        return start(raw, text, funnel_name=funnel_name, now=now, contact=state.contact if state.steps else None,
                     field_types=field_types, ab_picks=ab_picks)
    before = [PreviewEntry("contact", "text", text)]
    defn, error = _definition(raw)
    if defn is None:
        return _failed(state, error or "", before)
    if not state.waiting_for_reply:
        return replace(state, entries=(*state.entries, *before, PreviewEntry("note", "ignored")))
    run = walk(defn, _context(state, funnel_name, now or clock.now(), field_types), state.node_id or "", reply=text)
    if run.status == "ignored":
        return replace(state, entries=(*state.entries, *before, PreviewEntry("note", "ignored")))
    return _apply(state, run, before)


def deliver(raw: Mapping[str, Any], state: PreviewState, result: Mapping[str, Any], *, funnel_name: str = "",
            now: datetime | None = None, field_types: Mapping[str, str] | None = None) -> PreviewState:
    """The pending outside call answered (the page ran it): note what it did, then walk the node's ``on_result``.

    The note (kind ``call``) carries what the test chat shows: the service, whether it succeeded, the model and
    tokens, the tool calls and the rejected values with their reasons.
    """
    if state.status != "waiting" or state.pending_call is None:
        return state
    meta = result.get("meta") if isinstance(result.get("meta"), Mapping) else {}
    note = PreviewEntry("note", "call", str(state.pending_call.get("service") or ""), {
        "ok": result.get("ok", True) is not False, "kind": result.get("kind"), "error": result.get("error"),
        "model": meta.get("model"), "total_tokens": meta.get("total_tokens"),
        "prompt_tokens": meta.get("prompt_tokens"), "completion_tokens": meta.get("completion_tokens"),
        "tools": list(result.get("tools") or []), "rejected": list(result.get("rejected") or []),
        "accepted": [{"key": a.get("key"), "value": a.get("value")} for a in result.get("accepted") or ()]})
    defn, error = _definition(raw)
    if defn is None:
        return _failed(state, error or "", [note])
    run = walk(defn, _context(state, funnel_name, now or clock.now(), field_types), state.node_id or "",
               call_result=result)
    return _apply(replace(state, pending_call=None), run, [note])


def time_out(raw: Mapping[str, Any], state: PreviewState, *, funnel_name: str = "",
             now: datetime | None = None, field_types: Mapping[str, str] | None = None) -> PreviewState:
    """The waiting node's deadline passes (a reply timeout, or a delay that ends)."""
    if state.status != "waiting" or not state.can_time_out:
        return state
    before = [PreviewEntry("note", "timeout")]
    defn, error = _definition(raw)
    if defn is None:
        return _failed(state, error or "", before)
    run = walk(defn, _context(state, funnel_name, now or clock.now(), field_types), state.node_id or "",
               timed_out=True)
    return _apply(state, run, before)
