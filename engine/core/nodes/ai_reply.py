"""Perguntar à IA: a model talks with the contact and collects fields, verified, until the lead is qualified.

The node is pure: it *describes* each turn as an outside call (``CallOutside("ai", request)``, run by
``workbench/services/ai_step.py`` in the calls pool) and decides what follows from the answer in ``on_result``:
verified values are stored (with their provenance), the model's reply is sent, and the step either ends —
``qualificado`` (every required field collected), ``humano`` (the contact asked for a person), ``incompleto``
(``max_turns`` calls or ``reply_timeout_s`` without an answer), ``erro`` (the provider kept failing, the budget is
spent, the turn took longer than ``call_limit_s``) — or waits for the contact's next message, which starts the
next turn. A message that arrives while a turn's call is pending is kept in the step's state and folded into a
new turn right after the answer, so the contact keeps their order.

The step's state lives in the run's variables under ``__ai`` (turn, phase, pending messages, keys collected,
the last turn's rejections); it is reset when the step is entered again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    Action,
    CallOutside,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    SendText,
    SetContactField,
    SetVariable,
    TargetStr,
    TemplateStr,
    Wait,
    always_waits,
    check_wait_seconds,
    raw_list,
    render_text,
    store_value,
)
from workbench.base.i18n import t

FieldType = Literal["text", "email", "phone", "number", "datetime", "choice"]
OUTPUTS = ["qualificado", "incompleto", "humano", "erro"]
STATE = "__ai"
MAX_PENDING = 10
"""Messages kept while a call is pending (each cut to ``MAX_PENDING_CHARS``); later ones are still in the
conversation the model reads, this only decides that another turn follows."""
MAX_PENDING_CHARS = 500
_HISTORY = re.compile(r"\{\{\s*history\s*\}\}")


class CollectField(NodeData):
    """One field the model collects.

    Attributes:
        key: its name for the model and in logs (letters, digits, ``_``).
        type: how the value is checked: ``text``, ``email``, ``phone``, ``number``, ``datetime`` (a day and
            time, stored ``YYYY-MM-DD HH:MM`` in the workspace's zone) or ``choice`` (one of ``options``). A contact
            field defined in Configurações › Campos is also checked by its own type when it is the destination.
        description: what the model should ask for (shown to the model only).
        required: the lead is *qualificado* only once every required field is collected.
        options: the accepted answers of a ``choice``.
        save_to: where a verified value goes: ``contact.name``, ``contact.custom_data.X`` or ``vars.X``.
    """

    key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]
    type: FieldType = "text"
    description: str = Field(default="", max_length=300)
    required: bool = True
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=30)
    save_to: TargetStr | None = None

    @model_validator(mode="after")
    def _check_options(self) -> CollectField:
        if self.type == "choice" and not self.options:
            raise PydanticCustomError("options_missing", t("node.ai_reply.error.options_missing"), {"key": self.key})
        return self

    @property
    def target(self) -> str:
        """Where the value goes (``vars.<key>`` when no destination was chosen)."""
        return self.save_to or f"vars.{self.key}"


class AIReplyData(NodeData):
    """The step's configuration.

    Attributes:
        prompt: what the model should do in this step (template; ``{{history}}`` stands for the conversation,
            which the model reads as the chat's own messages, never inside its instructions).
        provider_id: the provider (Configurações › IA); empty = the workspace's default.
        fields: what to collect.
        max_turns: most model calls before *incompleto*.
        reply_timeout_s: seconds to wait for the contact between turns before *incompleto* (empty = no limit).
        call_limit_s: the longest one turn may take, retries included, before *erro*.
        temperature: empty = the provider's default.
        max_reply_chars: longest reply sent to the contact.
    """

    prompt: TemplateStr = Field(default="", max_length=8000)
    provider_id: int | None = None
    fields: list[CollectField] = Field(default_factory=list, max_length=20)
    max_turns: int = Field(default=8, ge=1, le=30)
    reply_timeout_s: float | None = 24 * 3600
    call_limit_s: float = Field(default=180, ge=10, le=1800)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_reply_chars: int = Field(default=700, ge=50, le=2000)

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("prompt_missing", t("node.ai_reply.error.prompt_missing"))
        return value

    @field_validator("reply_timeout_s")
    @classmethod
    def _check_timeout(cls, value: float | None) -> float | None:
        return check_wait_seconds(value)

    @model_validator(mode="after")
    def _check_keys(self) -> AIReplyData:
        keys = [f.key for f in self.fields]
        if len(set(keys)) != len(keys):
            raise PydanticCustomError("field_repeated", t("node.ai_reply.error.field_repeated"))
        return self


class AIReplyNode(NodeBase):
    """Schema of an ``ai_reply`` node."""

    type: Literal["ai_reply"]
    data: AIReplyData = Field(default_factory=AIReplyData)


# -- the step's state ---------------------------------------------------------------------------------------------

def _state(node: AIReplyNode, ctx: ExecutionContext) -> dict[str, Any]:
    raw = ctx.variables.get(STATE)
    if isinstance(raw, Mapping) and raw.get("node") == node.id:
        return {"node": node.id, "turn": int(raw.get("turn") or 0), "phase": raw.get("phase") or "call",
                "pending": list(raw.get("pending") or []), "collected": dict(raw.get("collected") or {}),
                "rejections": list(raw.get("rejections") or [])}
    return {"node": node.id, "turn": 0, "phase": "call", "pending": [], "collected": {}, "rejections": []}


def request_for(node: AIReplyNode, ctx: ExecutionContext, state: Mapping[str, Any]) -> dict[str, Any]:
    """The outside call's request for this turn: JSON, no secrets (the provider is looked up by id)."""
    cfg = node.data
    prompt = render_text(_HISTORY.sub(t("node.ai_reply.prompt.history"), cfg.prompt), ctx, t("run.what.prompt"))
    return {"node_id": node.id, "provider_id": cfg.provider_id, "prompt": prompt.text,
            "fields": [f.model_dump() | {"save_to": f.target} for f in cfg.fields],
            "collected": sorted(state["collected"]), "rejections": state["rejections"], "turn": state["turn"],
            "max_turns": cfg.max_turns, "temperature": cfg.temperature, "max_reply_chars": cfg.max_reply_chars,
            "timezone": ctx.timezone}


def _turn(node: AIReplyNode, ctx: ExecutionContext, state: dict[str, Any], actions: tuple[Action, ...] = (),
          log: tuple[str, ...] = (), data: Mapping[str, Any] | None = None) -> NodeResult:
    """Start the next turn: one more model call, waiting on it."""
    state = {**state, "turn": state["turn"] + 1, "phase": "call", "pending": []}
    return NodeResult(actions=(*actions, SetVariable(STATE, state),
                               CallOutside("ai", request_for(node, ctx, state))),
                      wait=Wait("call", timeout_s=node.data.call_limit_s), log=log, data=data or {})


def _leave(output: str, actions: tuple[Action, ...] = (), log: tuple[str, ...] = (),
           data: Mapping[str, Any] | None = None) -> NodeResult:
    return NodeResult(output=output, actions=(*actions, SetVariable(STATE, None)), log=log, data=data or {})


# -- executors -----------------------------------------------------------------------------------------------------

def execute(node: AIReplyNode, ctx: ExecutionContext) -> NodeResult:
    """Enter the step: the first turn's call."""
    return _turn(node, ctx, _state(node, ctx) | {"turn": 0, "collected": {}, "rejections": []})


def resume(node: AIReplyNode, ctx: ExecutionContext, reply_text: str) -> NodeResult:
    """The contact wrote: start the next turn, or — while a call is pending — keep the text for the turn after."""
    state = _state(node, ctx)
    if state["phase"] == "call":
        pending = [*state["pending"], reply_text[:MAX_PENDING_CHARS]][-MAX_PENDING:]
        return NodeResult(actions=(SetVariable(STATE, {**state, "pending": pending}),),
                          wait=Wait("call", timeout_s=node.data.call_limit_s), data={"ai": {"folded": True}})
    return _turn(node, ctx, state)


def on_result(node: AIReplyNode, ctx: ExecutionContext, result: Mapping[str, Any]) -> NodeResult:
    """A turn's answer: store verified values, send the reply, then leave by an output or wait for the contact."""
    cfg = node.data
    state = _state(node, ctx)
    if not result.get("ok"):
        kind = str(result.get("kind") or "failed")
        log = (t("node.ai_reply.log.failed", kind=kind, error=str(result.get("error") or "")[:200]),)
        return _leave("erro", log=log, data={"ai": {"outcome": "erro", "kind": kind, "turn": state["turn"]}})
    by_key = {f.key: f for f in cfg.fields}
    actions: list[Action] = []
    collected = dict(state["collected"])
    for item in result.get("accepted") or ():
        field = by_key.get(item.get("key"))
        if field is None:
            continue
        collected[field.key] = True
        actions.append(_store(field, item, node.id, str((result.get("meta") or {}).get("model") or "")))
    rejections = [{"key": str(r.get("key")), "reason": str(r.get("reason"))} for r in result.get("rejected") or ()]
    log = tuple(t("node.ai_reply.log.rejected", field=r["key"], reason=r["reason"]) for r in rejections)
    reply = str(result.get("reply") or "").strip()
    missing = [f.key for f in cfg.fields if f.required and f.key not in collected]
    facts = {"turn": state["turn"], "accepted": sorted(k for k in collected if k not in state["collected"]),
             "rejected": rejections, "missing": missing, "tools": list(result.get("tools") or [])}
    send = (SendText(reply),) if reply else ()
    if result.get("handoff"):
        return _leave("humano", (*actions, *send), log, {"ai": {**facts, "outcome": "humano"}})
    if not missing:
        return _leave("qualificado", (*actions, *send), log, {"ai": {**facts, "outcome": "qualificado"}})
    if state["turn"] >= cfg.max_turns:
        return _leave("incompleto", tuple(actions), log + (t("node.ai_reply.log.max_turns", turns=cfg.max_turns),),
                      {"ai": {**facts, "outcome": "incompleto"}})
    state = {**state, "collected": collected, "rejections": rejections}
    if state["pending"]:
        return _turn(node, ctx, state, (*actions, *send), log, {"ai": {**facts, "folded": len(state["pending"])}})
    state["phase"] = "reply"
    return NodeResult(actions=(*actions, *send, SetVariable(STATE, state)), log=log,
                      wait=Wait("reply", timeout_s=cfg.reply_timeout_s), data={"ai": facts})


def _store(field: CollectField, item: Mapping[str, Any], node_id: str, model: str) -> Action:
    """The action that stores a verified value, with where it came from for a contact field."""
    action = store_value(field.target, item.get("value"))
    if isinstance(action, SetContactField):
        source = {"by": "ai", "node": node_id, "model": model, "message_id": item.get("message_id"),
                  "message_at": item.get("message_at")}
        return SetContactField(action.field, action.value, source=source)
    return action


def on_timeout(node: AIReplyNode, ctx: ExecutionContext) -> NodeResult:
    """A turn took longer than ``call_limit_s`` (*erro*), or the contact did not answer in time (*incompleto*)."""
    state = _state(node, ctx)
    if state["phase"] == "call":
        return _leave("erro", log=(t("node.ai_reply.log.call_timeout"),),
                      data={"ai": {"outcome": "erro", "kind": "timeout", "turn": state["turn"]}})
    return _leave("incompleto", log=(t("run.timeout"),), data={"ai": {"outcome": "incompleto", "turn": state["turn"]}})


def outputs(data: Config) -> list[str]:
    """qualificado, incompleto, humano, erro."""
    return list(OUTPUTS)


def required_outputs(data: Config) -> list[str]:
    """*qualificado* must lead somewhere; the others end the run when left unconnected."""
    return ["qualificado"]


def summary(data: Config) -> str:
    """The fields collected, e.g. "coleta: nome, email"."""
    keys = [str(f.get("key")) for f in raw_list(data, "fields") if isinstance(f, Mapping) and f.get("key")]
    return t("node.ai_reply.summary", fields=", ".join(keys)) if keys else t("node.ai_reply.summary_empty")


def default_data() -> dict[str, Any]:
    """A new step: empty prompt (⚠ until written), collecting name and e-mail into the contact."""
    return {"prompt": "", "fields": [
        {"key": "nome", "type": "text", "description": "nome do contato", "required": True,
         "save_to": "contact.name"},
        {"key": "email", "type": "email", "description": "e-mail do contato", "required": True,
         "save_to": "contact.custom_data.email"}], "max_turns": 8, "reply_timeout_s": 24 * 3600}


SPEC = NodeSpec(type="ai_reply", schema=AIReplyNode, execute=execute, outputs=outputs,
                required_outputs=required_outputs, waits=always_waits, resume=resume, on_timeout=on_timeout,
                on_result=on_result, summary=summary, default_data=default_data,
                hints={"prompt": FieldHint(kind="long_text"), "provider_id": FieldHint(source="ai_providers"),
                       "fields": FieldHint(kind="collect_fields")})
