"""The AI step's executor ("Perguntar à IA"): one turn of the model, with verified extraction.

``engine/core/nodes/ai_reply.py`` describes each turn as an outside call (service ``ai``); the calls pool runs it
here (``workbench/services/outside_calls.py``). One turn:

1. **Messages.** The system message holds the workspace's *Prompt mestre*, the step's instructions (rendered by
   the node; ``{{history}}`` stands for the conversation), the fixed rules and the fields to collect — only text
   the business wrote, never the contact's. The conversation follows as chat messages: the contact's as
   ``user`` messages, the bot's and agents' as ``assistant`` ones. Rejections of the last turn are told by key
   and reason, without the rejected value.
2. **Tools.** Only the step's: ``registrar_dados`` (the fields, as strings) and ``falar_com_humano``; a provider
   without tool calling gets a strict JSON answer with the same content instead. When the model answers with
   tools but no text, a second call (without tools) gives it the tools' results and asks for the reply.
3. **Verification.** A value is kept only if it passes its type's check (``contact_fields.coerce``; a day and
   time for ``datetime``; a defined contact field's own type when it is the destination) *and* it is grounded:
   it, or its normalised form, appears in one of the contact's own messages of this conversation (not the bot's,
   not the prompt). The message it was found in is its provenance. Anything else is rejected with a reason
   (``não aparece nas mensagens do contato``) that the node logs and the model hears next turn.
4. **The reply** is stripped of markup and control characters and cut to the step's length.

Failures: timeouts, 429 and 5xx raise ``RetryLater`` (the outside call retries with backoff); anything else —
no provider, bad key, budget spent — is a final ``{"ok": False, "kind": ...}`` and the step takes *erro*.
The answer carries the model's figures in ``meta`` (model, tokens, cost estimate) for the funnel event; never the
key, which only ``ai_client`` ever reads.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.nodes.wait_reply import parse_number
from workbench.base.clock import DEFAULT_TIMEZONE, now
from workbench.base.errors import InvalidInput
from workbench.base.i18n import error_text, t
from workbench.services import ai_client, contact_fields, outside_calls
from workbench.services.auth import Actor
from workbench.services.outside_calls import OutsideCallView, RetryLater
from workbench.store.db import session_scope
from workbench.store.models import FunnelRun, Message
from workbench.store.text import clean_text

log = logging.getLogger(__name__)

COLLECT_TOOL = "registrar_dados"
HANDOFF_TOOL = "falar_com_humano"
HISTORY_MESSAGES = 30
"""Messages of the conversation the model reads (the newest); grounding looks at the contact's among them."""
MAX_TOKENS = 600
MAX_VALUE_CHARS = 300

_TAGS = re.compile(r"<[^>]{0,200}>")
_MARKDOWN = re.compile(r"(\*\*|__|`{1,3}|^#{1,6}\s*|^>\s*)", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]{0,200})\]\((https?://[^)\s]{1,500})\)")
_HOUR = r"(?<!\d)0?{h}\s*(?:h|:\d\d|horas?|hrs?)\b"
_RELATIVE = {"hoje": 0, "amanha": 1, "depois de amanha": 2}
_WEEKDAYS = ("segunda", "terca", "quarta", "quinta", "sexta", "sabado", "domingo")
_MONTHS = ("janeiro", "fevereiro", "marco", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
           "novembro", "dezembro")


@dataclass(frozen=True)
class LeadMessage:
    """One message of the conversation as a turn sees it; ``id`` None in the editor's test chat."""

    direction: str  # "in" from the contact, "out" from the bot or an agent
    text: str
    id: int | None = None
    at: datetime | None = None


# -- the executor -------------------------------------------------------------------------------------------------

class AIExecutor:
    """The ``ai`` service of the outside calls (``outside_calls.EXECUTORS``)."""

    max_attempts = 3
    timeout_s = 120.0

    def backoff(self, attempt: int) -> float:
        """2 s, 4 s, ... up to 30 s between tries."""
        return min(2.0 * 2 ** max(attempt - 1, 0), 30.0)

    def run(self, call: OutsideCallView) -> dict[str, Any]:
        """One turn for the run's conversation (its messages read from PostgreSQL)."""
        with session_scope() as session:
            conversation_id = session.scalar(select(FunnelRun.conversation_id).where(
                FunnelRun.id == call.run_id, FunnelRun.workspace_id == call.workspace_id))
            if conversation_id is None:
                return {"ok": False, "kind": "config", "error": "run not found"}
            history = conversation_messages(session, conversation_id)
        return run_turn(call.workspace_id, call.request, history)  # no transaction open while the model thinks


    def preview(self, actor: Actor, request: Mapping[str, Any],
                history: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        """One turn for the editor's test chat: the chat's messages stand for the conversation (no ids: the
        provenance of a value found there has no message to point at)."""
        moment = now()
        messages = [LeadMessage(str(m.get("direction")), str(m.get("text") or ""), None, moment)
                    for m in history if m.get("text")][-HISTORY_MESSAGES:]
        return run_turn(actor.workspace_id, request, messages)


def conversation_messages(session: Session, conversation_id: int, limit: int = HISTORY_MESSAGES) -> list[LeadMessage]:
    """The newest text messages of a conversation, oldest first."""
    rows = session.execute(select(Message.id, Message.direction, Message.text, Message.created_at).where(
        Message.conversation_id == conversation_id, Message.text.is_not(None),
    ).order_by(Message.id.desc()).limit(limit)).all()
    return [LeadMessage(direction, text, row_id, at) for row_id, direction, text, at in reversed(rows)]


def run_turn(workspace_id: int, request: Mapping[str, Any], history: Sequence[LeadMessage], *,
             chat: Callable[..., ai_client.ChatAnswer] = ai_client.chat) -> dict[str, Any]:
    """Ask the model once (twice when it used tools without replying), verify what it extracted; the step's answer.

    What it reads from the database (the *Prompt mestre*, the contact field definitions) is read first, in a short
    transaction: none is open while the model answers (``chat`` opens its own for the provider and the usage).
    Raises ``RetryLater`` for failures worth another try.
    """
    with session_scope() as session:
        master = ai_client.master_prompt(session, workspace_id)
        definitions = contact_fields.definitions(session, workspace_id)
    fields = [f for f in request.get("fields") or () if isinstance(f, Mapping) and f.get("key")]
    messages = build_messages(master, request, fields, history)
    tools = build_tools(fields)
    schema = answer_schema(fields)
    provider_id = request.get("provider_id")
    temperature = request.get("temperature")
    try:
        answer = chat(None, workspace_id, provider_id, messages, tools=tools, json_schema=schema,
                      temperature=temperature, max_tokens=MAX_TOKENS)
        parsed = parse_answer(answer, fields)
        answers = [answer]
        if not parsed.reply and answer.tool_calls:
            follow = [*messages, _assistant_tool_message(answer),
                      *({"role": "tool", "tool_call_id": call.id, "content": parsed.tool_results.get(call.id, "ok")}
                        for call in answer.tool_calls)]
            second = chat(None, workspace_id, provider_id, follow, tools=None, json_schema=None,
                          temperature=temperature, max_tokens=MAX_TOKENS)
            answers.append(second)
            parsed.reply = second.text or ""
    except ai_client.AIError as exc:
        if exc.retryable:
            raise RetryLater(str(exc)[:200], exc.kind) from None
        return {"ok": False, "kind": exc.kind, "error": str(exc)[:200]}
    zone = _zone(str(request.get("timezone") or DEFAULT_TIMEZONE))
    accepted, rejected = verify(parsed.values, fields, history, zone, definitions)
    rejected = parsed.rejected + rejected
    return {"ok": True, "reply": clean_reply(parsed.reply, int(request.get("max_reply_chars") or 700)),
            "accepted": accepted, "rejected": rejected, "handoff": parsed.handoff,
            "tools": [{"name": c.name, "arguments": _safe_args(c)} for a in answers for c in a.tool_calls],
            "meta": _meta(answers)}


def _meta(answers: Sequence[ai_client.ChatAnswer]) -> dict[str, Any]:
    """Model, tokens, model latency and cost estimate summed over the turn's calls."""
    costs = [a.cost_estimate for a in answers if a.cost_estimate is not None]
    return {"model": answers[-1].model, "prompt_tokens": sum(a.prompt_tokens for a in answers),
            "completion_tokens": sum(a.completion_tokens for a in answers),
            "total_tokens": sum(a.total_tokens for a in answers), "model_ms": sum(a.latency_ms for a in answers),
            "cost_estimate": round(sum(costs), 6) if costs else None, "model_calls": len(answers)}


def _safe_args(call: ai_client.ToolCall) -> Any:
    """A tool call's arguments for the events and the test chat: parsed, or its raw text cut short."""
    if call.arguments is not None:
        return {str(k)[:40]: str(v)[:MAX_VALUE_CHARS] for k, v in list(call.arguments.items())[:30]}
    return call.raw_arguments[:MAX_VALUE_CHARS]


def _assistant_tool_message(answer: ai_client.ChatAnswer) -> dict[str, Any]:
    return {"role": "assistant", "content": answer.text or None, "tool_calls": [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
        for c in answer.tool_calls]}


# -- what the model is sent ----------------------------------------------------------------------------------------

def build_messages(master: str, request: Mapping[str, Any], fields: Sequence[Mapping[str, Any]],
                   history: Sequence[LeadMessage]) -> list[dict[str, Any]]:
    """System message (business text only), then the conversation: the contact's text only in ``user`` messages."""
    lines = [t("ai.prompt.rules", collect=COLLECT_TOOL, handoff=HANDOFF_TOOL), t("ai.prompt.fields")]
    collected = set(request.get("collected") or ())
    for field in fields:
        status = t("ai.prompt.collected") if field["key"] in collected else (
            t("ai.prompt.required") if field.get("required", True) else t("ai.prompt.optional"))
        options = f" [{', '.join(field.get('options') or [])}]" if field.get("type") == "choice" else ""
        lines.append(f"- {field['key']} ({t('ai.type.' + str(field.get('type') or 'text'))}{options}; {status}): "
                     f"{field.get('description') or ''}")
    for rejection in request.get("rejections") or ():
        lines.append(t("ai.prompt.rejected", field=rejection.get("key"), reason=rejection.get("reason")))
    system = "\n\n".join(part for part in (master.strip(), str(request.get("prompt") or "").strip(),
                                           "\n".join(lines)) if part)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in history:
        role = "user" if message.direction == "in" else "assistant"
        messages.append({"role": role, "content": message.text})
    return messages


def build_tools(fields: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The step's two tools, and nothing else."""
    properties = {f["key"]: {"type": "string", "description": str(f.get("description") or f["key"])[:300]}
                  for f in fields}
    return [
        {"type": "function", "function": {
            "name": COLLECT_TOOL, "description": t("ai.tool.collect"),
            "parameters": {"type": "object", "properties": properties, "additionalProperties": False}}},
        {"type": "function", "function": {
            "name": HANDOFF_TOOL, "description": t("ai.tool.handoff"),
            "parameters": {"type": "object", "properties": {"motivo": {"type": "string"}},
                           "additionalProperties": False}}},
    ]


def answer_schema(fields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The strict JSON answer for providers without tool calling: reply, data (null when unknown), handoff."""
    keys = [f["key"] for f in fields]
    return {"type": "object", "additionalProperties": False, "required": ["resposta", "dados", "falar_com_humano"],
            "properties": {
                "resposta": {"type": "string"},
                "dados": {"type": "object", "additionalProperties": False, "required": keys,
                          "properties": {k: {"type": ["string", "null"]} for k in keys}},
                "falar_com_humano": {"type": "boolean"}}}


# -- what the model answered ---------------------------------------------------------------------------------------

@dataclass
class ParsedAnswer:
    """The values proposed, the handoff, the reply, and the rejections found while parsing."""

    values: dict[str, Any]
    handoff: bool
    reply: str
    rejected: list[dict[str, Any]]
    tool_results: dict[str, str]


def parse_answer(answer: ai_client.ChatAnswer, fields: Sequence[Mapping[str, Any]]) -> ParsedAnswer:
    """Read tool calls (or the strict JSON answer); only the step's tools and fields count."""
    keys = {f["key"] for f in fields}
    parsed = ParsedAnswer({}, False, answer.text or "", [], {})
    for call in answer.tool_calls:
        if call.name == HANDOFF_TOOL:
            parsed.handoff = True
            parsed.tool_results[call.id] = "ok"
        elif call.name == COLLECT_TOOL and call.arguments is not None:
            parsed.values.update({k: v for k, v in call.arguments.items() if k in keys})
            parsed.tool_results[call.id] = "ok"
        elif call.name == COLLECT_TOOL:
            parsed.rejected.append({"key": COLLECT_TOOL, "value": call.raw_arguments[:MAX_VALUE_CHARS],
                                    "reason": t("ai.reject.malformed")})
            parsed.tool_results[call.id] = t("ai.reject.malformed")
        else:
            parsed.rejected.append({"key": str(call.name)[:40], "value": "", "reason": t("ai.reject.unknown_tool")})
            parsed.tool_results[call.id] = t("ai.reject.unknown_tool")
    if not answer.tool_calls and parsed.reply.lstrip().startswith("{"):
        try:
            data = json.loads(parsed.reply)
        except ValueError:
            data = None
        if isinstance(data, Mapping) and "resposta" in data:
            parsed.reply = str(data.get("resposta") or "")
            parsed.handoff = data.get("falar_com_humano") is True
            values = data.get("dados") if isinstance(data.get("dados"), Mapping) else {}
            parsed.values.update({k: v for k, v in values.items() if k in keys and v not in (None, "")})
    return parsed


def clean_reply(text: str, limit: int) -> str:
    """The reply as sent: no HTML tags nor Markdown marks, links as "text (url)", control characters gone, cut to
    ``limit`` characters at a word boundary."""
    text = _LINK.sub(r"\1 (\2)", text or "")
    text = _TAGS.sub("", text)
    text = _MARKDOWN.sub("", text)
    text = clean_text(text, limit=None)[0]
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if len(text) > limit:
        cut = text[: limit - 1]
        text = (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2:] else cut).rstrip() + "…"
    return text


# -- verification -------------------------------------------------------------------------------------------------

def verify(values: Mapping[str, Any], fields: Sequence[Mapping[str, Any]], history: Sequence[LeadMessage],
           zone: ZoneInfo, definitions: Mapping[str, contact_fields.FieldDef]) -> tuple[list[dict], list[dict]]:
    """Check each proposed value's type and grounding; returns (accepted, rejected).

    Accepted items: key, value (as stored), save_to, and the contact's message it came from (id, time).
    """
    by_key = {f["key"]: f for f in fields}
    lead = [m for m in history if m.direction == "in"]
    accepted, rejected = [], []
    for key, raw in values.items():
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue  # the model left it empty: nothing to check
        field = by_key[key]
        shown = str(raw)[:MAX_VALUE_CHARS]
        try:
            value = check_type(field, raw, definitions)
        except InvalidInput as exc:
            rejected.append({"key": key, "value": shown, "reason": error_text(exc)})
            continue
        source = ground(field, value, lead, zone)
        if source is None:
            rejected.append({"key": key, "value": shown, "reason": t("ai.reject.not_grounded")})
            continue
        accepted.append({"key": key, "value": value, "save_to": field.get("save_to"), "message_id": source.id,
                         "message_at": source.at.isoformat() if source.at else None})
    return accepted, rejected


def check_type(field: Mapping[str, Any], raw: Any, definitions: Mapping[str, contact_fields.FieldDef]) -> Any:
    """The value as stored, or ``InvalidInput`` with a pt-BR reason."""
    kind = str(field.get("type") or "text")
    key = str(field["key"])
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidInput("not a value", key="ai.reject.type", field=key)
    text = str(raw).strip()
    if kind == "datetime":
        value: Any = parse_datetime(text)
        if value is None:
            raise InvalidInput("not a datetime", key="ai.reject.datetime", field=key)
        value = value.strftime("%Y-%m-%d %H:%M")
    elif kind == "choice":
        value = contact_fields.coerce(contact_fields.FieldDef(None, key, key, "choice",
                                                              tuple(field.get("options") or ())), text)
    else:
        value = contact_fields.coerce(contact_fields.FieldDef(None, key, key, kind), text)
        if kind == "text" and len(value) > MAX_VALUE_CHARS:
            raise InvalidInput("too long", key="ai.reject.long", field=key, max=MAX_VALUE_CHARS)
    target = str(field.get("save_to") or "")
    definition = definitions.get(target.removeprefix("contact.custom_data.")) \
        if target.startswith("contact.custom_data.") else None
    if definition is not None and kind != "datetime":
        value = contact_fields.coerce(definition, value)  # the destination's own type and options
    return value


def parse_datetime(text: str) -> datetime | None:
    """``YYYY-MM-DD HH:MM`` or ``YYYY-MM-DDTHH:MM[:SS]`` (what the model is asked for); None otherwise."""
    try:
        value = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    return value.replace(tzinfo=None)


def normalise(text: str) -> str:
    """Lower case, no accents, punctuation as spaces (``@ . - _ + :`` kept), single spaces."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^\w@.+:\-]+", " ", text)
    return " ".join(text.split())


def ground(field: Mapping[str, Any], value: Any, lead: Sequence[LeadMessage], zone: ZoneInfo) -> LeadMessage | None:
    """The newest of the contact's messages that contains ``value`` (or its normalised form); None when none does."""
    kind = str(field.get("type") or "text")
    for message in reversed(lead):
        if _appears(kind, value, message, zone):
            return message
    return None


def _appears(kind: str, value: Any, message: LeadMessage, zone: ZoneInfo) -> bool:
    text = message.text or ""
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        wanted = str(value)
        national = wanted[2:] if wanted.startswith("55") else wanted
        return len(national) >= 8 and (wanted in digits or national in digits)
    if kind == "number":
        numbers = (parse_number(token) for token in re.findall(r"[\d][\d.,]*", text))
        return any(n is not None and float(n) == float(value) for n in numbers)
    if kind == "email":
        return str(value).lower() in text.lower()
    if kind == "datetime":
        return _datetime_appears(str(value), message, zone)
    wanted = normalise(str(value))
    return bool(wanted) and f" {wanted} " in f" {normalise(text)} "


def _datetime_appears(value: str, message: LeadMessage, zone: ZoneInfo) -> bool:
    """The hour is written in the message, and so is the day: its number, its weekday, its month, or hoje /
    amanhã / depois de amanhã counted from the message's own day."""
    when = parse_datetime(value)
    if when is None:
        return False
    text = f" {normalise(message.text)} "
    hour = when.hour
    hours = {hour, hour - 12} if hour > 12 else {hour}
    if when.minute:  # "14:30", "14h30": the minutes must be written too
        patterns = [rf"(?<!\d)0?{h}\s*(?:h|:)\s*{when.minute:02d}\b" for h in hours]
    else:
        patterns = [_HOUR.format(h=h) for h in hours]
    if not any(re.search(pattern, text) for pattern in patterns):
        return False
    sent = (message.at.astimezone(zone).date() if message.at else None) or date.today()
    for word, days in sorted(_RELATIVE.items(), key=lambda item: -len(item[0])):
        if f" {word} " in text:
            return when.date() == sent + timedelta(days=days)
    if f" {_WEEKDAYS[when.weekday()]}" in text or f" {_MONTHS[when.month - 1]} " in text:
        return True
    return bool(re.search(rf"\b0?{when.day}\s*(?:/|de\b)", text)) or bool(re.search(rf"\bdia\s+0?{when.day}\b", text))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


outside_calls.register("ai", AIExecutor())
