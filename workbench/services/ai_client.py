"""One model call to a workspace's OpenAI-compatible provider: ``chat``.

Every AI feature (the funnel's AI step, *Resumo da IA*, *Testar conexão*) calls a model through ``chat``, which

- loads the provider (the workspace's default when none is named) and decrypts its key, which never leaves this
  module: not in logs, errors, usage rows or events;
- refuses the call when the workspace's monthly token budget is spent (``AIError`` kind ``budget``);
- offers ``tools`` as function calling when the provider has it, and otherwise asks for a strict JSON answer
  shaped like the tools' arguments (``{"reply": ..., "tool_calls": [{"name": ..., "arguments": {...}}]}``) and
  turns it into the same ``ToolCall`` objects, so callers never see the difference;
- holds one of the workspace's ``max_concurrent_calls`` slots (a Redis sorted set shared by every process) for the
  call, waiting for one up to the provider's timeout (then ``AIError`` kind ``rate_limited``, retryable);
- makes ONE attempt (the SDK's own retries are off): retrying with back-off belongs to the caller's outside-call
  mechanism, which knows the attempt count and the deadline (``AIError.retryable`` tells it what to retry);
- records one ``ai_usage`` row per call, success or failure (tokens, latency, model, outcome, cost estimate from
  the workspace's price table), and adds it to the month's counters (``ai_usage_months``, what the budget check
  reads), in a transaction of its own so a failed call is counted even when the caller's transaction rolls back;
- holds no database connection while the model answers: reads come before the call and the usage write after it,
  each in a short transaction; answers are read up to ``MAX_ANSWER_BYTES``.

Why the OpenAI Python SDK: every preset (OpenAI, Gemini, Cloudflare Workers AI, Ollama, llama.cpp server, vLLM,
OpenRouter) speaks its chat API; it takes a ``base_url``, a per-client timeout and ``max_retries``, maps HTTP
statuses to typed exceptions (429, 5xx, timeouts) and parses tool calls into typed objects.

Callers should not hold a transaction (let alone row locks) open across ``chat``: it takes seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
import openai
import redis
from sqlalchemy import Date, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from workbench.base.errors import NotFound, WorkbenchError
from workbench.services.auth import Actor
from workbench.services.workspace_settings import AISettings, ModelPrice, load_setting
from workbench.store.bus import get_redis
from workbench.store.crypto import decrypt_secret, encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import AIProvider, AIUsage, AIUsageMonth, Workspace, is_row_id

log = logging.getLogger(__name__)

AIErrorKind = Literal["timeout", "rate_limited", "server", "auth", "bad_request", "budget", "config"]
RETRYABLE_KINDS = frozenset({"timeout", "rate_limited", "server"})
PURPOSES = ("step", "summary", "test", "chat")
"""What calls are recorded for (``purpose`` of ``chat``); the panel has a label for each, and shows others as given."""
MAX_TOKENS_LIMIT = 16_384
"""The most completion tokens one call may ask for (bounds a caller's mistake, not the model)."""
_MAX_ERROR_CHARS = 200
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""The most bytes of an answer read from a provider: a broken or hostile endpoint cannot fill the memory."""


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked for. ``arguments`` is None when the model's arguments are not a JSON object;
    ``raw_arguments`` keeps what it sent either way (for the record, never to be run)."""

    id: str
    name: str
    arguments: dict | None
    raw_arguments: str


@dataclass(frozen=True)
class ChatAnswer:
    """The model's answer and what it cost. ``text`` is None when the model only called tools.

    ``raw_text`` (an extension) is the model's content when a JSON answer was asked for (tools on a provider
    without tool calling) and it was not valid JSON: then ``text`` is None and ``tool_calls`` is empty.
    """

    text: str | None
    tool_calls: tuple[ToolCall, ...]
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_ms: int
    cost_estimate: float | None
    raw_text: str | None = None


class AIError(WorkbenchError):
    """A model call that did not give an answer. ``kind`` says why; ``retryable`` whether trying again later
    may help (timeouts, 429, 5xx, connection errors). The message never holds the key or the prompt."""

    def __init__(self, kind: AIErrorKind, detail: str = "", *, latency_ms: int = 0, **context: Any) -> None:
        super().__init__(detail or kind, key=f"error.ai_{kind}", **context)
        self.kind: AIErrorKind = kind
        self.retryable = kind in RETRYABLE_KINDS
        self.latency_ms = latency_ms


class ProviderNotFound(AIError, NotFound):
    """No such provider in the workspace (another workspace's id included): both ``NotFound`` (what ids of other
    workspaces always are) and an ``AIError`` of kind ``config`` (what a step's call makes of it: no retry)."""

    def __init__(self) -> None:
        super().__init__("config", "ai provider not found")
        self.key = "error.ai_provider_not_found"


@dataclass(frozen=True)
class ProviderConfig:
    """What a call needs from a provider row, the key decrypted (kept out of ``repr``)."""

    id: int
    workspace_id: int
    name: str
    base_url: str
    model: str
    temperature: float
    timeout_s: float
    use_tools: bool
    api_key: str = field(default="", repr=False)


def load_provider(session: Session, workspace_id: int, provider_id: int | None) -> ProviderConfig:
    """The provider ``provider_id`` of the workspace, or the workspace's default when None.

    Raises:
        ProviderNotFound: no such provider in this workspace (another workspace's id included); a ``NotFound``
            and an ``AIError`` of kind ``config``.
        AIError: kind ``config`` when no provider was named and the workspace has no default.
    """
    query = select(AIProvider).where(AIProvider.workspace_id == workspace_id)
    if provider_id is None:
        row = session.scalars(query.where(AIProvider.is_default.is_(True))).first()
        if row is None:
            raise AIError("config", "no default AI provider")
    else:
        row = session.scalars(query.where(AIProvider.id == provider_id)).first() if is_row_id(provider_id) else None
        if row is None:
            raise ProviderNotFound()
    try:
        api_key = decrypt_secret(row.api_key) if row.api_key else ""
    except WorkbenchError:
        # the server's secret key changed: a configuration problem no retry fixes
        error = AIError("config", "the provider's key cannot be decrypted")
        error.key = "error.secret_key"
        raise error from None
    return ProviderConfig(
        id=row.id, workspace_id=row.workspace_id, name=row.name, base_url=row.base_url, model=row.model,
        temperature=row.temperature, timeout_s=row.timeout_s, use_tools=uses_tools(row.tool_mode, row.supports_tools),
        api_key=api_key)


def uses_tools(tool_mode: str, supports_tools: bool | None) -> bool:
    """Whether calls offer tools as function calling (else a strict JSON answer): the admin's choice, or what
    *Testar conexão* found (a provider never tested is assumed to have tool calling)."""
    if tool_mode == "tools":
        return True
    if tool_mode == "json":
        return False
    return supports_tools is not False


# --- budget and cost -------------------------------------------------------------------------------------------


def current_month(workspace_id: int) -> Any:
    """SQL for the first day of the current month in the workspace's zone (the budget's period)."""
    return (select(cast(func.date_trunc("month", func.timezone(Workspace.timezone, func.now())), Date))
            .where(Workspace.id == workspace_id).scalar_subquery())


def tokens_this_month(session: Session, workspace_id: int) -> int:
    """Tokens (prompt + completion) the workspace's calls used this month (a few counter rows, whatever the
    month's number of calls)."""
    return int(session.scalar(select(func.coalesce(func.sum(AIUsageMonth.total_tokens), 0)).where(
        AIUsageMonth.workspace_id == workspace_id, AIUsageMonth.month == current_month(workspace_id))) or 0)


def budget_left(session: Session, workspace_id: int) -> int | None:
    """Tokens left in this month's budget (0 when spent), or None when the workspace set no budget."""
    budget = ai_settings(session, workspace_id).monthly_token_budget
    if not budget:
        return None
    return max(0, budget - tokens_this_month(session, workspace_id))


def ai_settings(session: Session, workspace_id: int) -> AISettings:
    """The workspace's AI settings (master prompt, budget, concurrency, prices)."""
    return load_setting(session, workspace_id, "ai")  # type: ignore[return-value]


def price_for(prices: dict[str, ModelPrice], model: str) -> ModelPrice | None:
    """The price row of ``model``: an exact match, else the longest name the model starts with (dated versions
    such as ``gpt-4o-mini-2024-07-18``), ignoring a ``models/`` prefix (Gemini lists them so)."""
    name = model.removeprefix("models/").strip().lower()
    table = {key.lower(): value for key, value in prices.items()}
    if name in table:
        return table[name]
    starts = [key for key in table if name.startswith(key)]
    return table[max(starts, key=len)] if starts else None


def estimate_cost(prices: dict[str, ModelPrice], model: str, prompt_tokens: int,
                  completion_tokens: int) -> float | None:
    """US dollars a call cost by the price table, or None when the model is not in it."""
    price = price_for(prices, model)
    if price is None:
        return None
    return round((prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1_000_000, 8)


def record_usage(workspace_id: int, provider_id: int | None, purpose: str, model: str, outcome: str, *,
                 prompt_tokens: int = 0, completion_tokens: int = 0, total_tokens: int = 0, latency_ms: int = 0,
                 cost_estimate: float | None = None) -> None:
    """Store one call's usage and add it to the month's counters, in a transaction of its own (kept when the
    caller's transaction rolls back)."""
    purpose = purpose[:16]
    with session_scope() as session:
        session.add(AIUsage(workspace_id=workspace_id, provider_id=provider_id, purpose=purpose,
                            model=model[:200], outcome=outcome[:16], prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens, total_tokens=total_tokens, latency_ms=latency_ms,
                            cost_estimate=cost_estimate))
        failed = int(outcome != "ok")
        stmt = pg_insert(AIUsageMonth).values(workspace_id=workspace_id, month=current_month(workspace_id),
                                              purpose=purpose, calls=1, failed=failed, total_tokens=total_tokens,
                                              cost_estimate=cost_estimate or 0.0)
        session.execute(stmt.on_conflict_do_update(
            index_elements=[AIUsageMonth.workspace_id, AIUsageMonth.month, AIUsageMonth.purpose],
            set_={"calls": AIUsageMonth.calls + 1, "failed": AIUsageMonth.failed + failed,
                  "total_tokens": AIUsageMonth.total_tokens + total_tokens,
                  "cost_estimate": AIUsageMonth.cost_estimate + (cost_estimate or 0.0)}))


# --- the SDK client --------------------------------------------------------------------------------------------

_clients: OrderedDict[tuple[str, str, float], openai.OpenAI] = OrderedDict()
_clients_lock = threading.Lock()
_MAX_CLIENTS = 32


class AnswerTooLarge(httpx2.ReadError):
    """A provider's answer went past ``MAX_ANSWER_BYTES``."""


class _CappedTransport(httpx2.BaseTransport):
    """The SDK's HTTP transport, reading at most ``MAX_ANSWER_BYTES`` of an answer (compressed answers are not
    asked for, so the cap holds for what is decoded too)."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        body = bytearray()
        try:
            for chunk in response.stream:  # type: ignore[union-attr]
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge("answer too large", request=request)
        finally:
            response.close()
        return httpx2.Response(response.status_code, headers=response.headers, content=bytes(body), request=request,
                               extensions=response.extensions)

    def close(self) -> None:
        self._inner.close()


def client_for(base_url: str, api_key: str, timeout_s: float) -> openai.OpenAI:
    """An SDK client for a provider, reused between calls (it holds a connection pool); never retries, reads at
    most ``MAX_ANSWER_BYTES`` of an answer."""
    key = (base_url, api_key, float(timeout_s))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
            client = openai.OpenAI(base_url=base_url, api_key=api_key or "no-key", timeout=float(timeout_s),
                                   max_retries=0, default_headers={"Accept-Encoding": "identity"},
                                   http_client=openai.DefaultHttpxClient(transport=_CappedTransport()))
            _clients[key] = client
            while len(_clients) > _MAX_CLIENTS:
                _clients.popitem(last=False)[1].close()
        else:
            _clients.move_to_end(key)
        return client


def map_error(exc: Exception, api_key: str = "") -> AIError:
    """The ``AIError`` for an SDK exception; its message is short and never holds the key."""
    if isinstance(exc, openai.APITimeoutError):
        return AIError("timeout", "the provider did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        if isinstance(exc.__cause__, AnswerTooLarge):
            return AIError("server", f"answer larger than {MAX_ANSWER_BYTES} bytes")
        return AIError("server", "could not reach the provider")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        kind: AIErrorKind
        if status == 429:
            kind = "rate_limited"
        elif status == 408:
            kind = "timeout"
        elif status >= 500:
            kind = "server"
        elif status in (401, 403):
            kind = "auth"
        else:
            kind = "bad_request"
        return AIError(kind, f"HTTP {status}: {scrub(str(exc.message), api_key)}", status=status)
    # an answer the SDK could not read, or anything else it raised
    return AIError("server", f"unreadable answer ({type(exc).__name__})")


def scrub(text: str, api_key: str) -> str:
    """``text`` without the key and cut short (providers echo parts of a request in their errors)."""
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    return text[:_MAX_ERROR_CHARS]


# --- concurrency ----------------------------------------------------------------------------------------------

SLOTS_KEY = "wb:ai-slots:{}"
"""A sorted set per workspace: one member per call in flight, scored by when its slot lapses (a process that died
mid-call frees its slot by itself)."""
SLOT_MARGIN_S = 5.0
_SLOT_POLL_S = 0.02  # a freed slot is taken within 20 ms; a waiter costs 50 Redis calls a second
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) - tonumber(ARGV[1]))
  return 1
end
return 0
"""


@contextmanager
def call_slot(workspace_id: int, limit: int, hold_s: float, wait_s: float) -> Iterator[None]:
    """Hold one of the workspace's ``limit`` call slots for the block (at most ``hold_s`` + a margin).

    Waits up to ``wait_s`` for a free slot, then raises ``AIError`` kind ``rate_limited`` (retryable). With Redis
    out of reach the call goes ahead unbounded: the limit protects the provider's quota, not our data.
    """
    client = get_redis()
    key = SLOTS_KEY.format(workspace_id)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    held = False
    try:
        while True:
            now_ms = int(time.time() * 1000)
            expires_ms = now_ms + int((hold_s + SLOT_MARGIN_S) * 1000)
            if client.eval(_ACQUIRE, 1, key, now_ms, expires_ms, max(1, limit), token):
                held = True
                break
            if time.monotonic() >= deadline:
                raise AIError("rate_limited", "too many AI calls of this workspace at once")
            time.sleep(_SLOT_POLL_S)
    except redis.RedisError:
        log.warning("ai call slots unavailable (Redis); calling without the concurrency limit")
    try:
        yield
    finally:
        if held:
            try:
                client.zrem(key, token)
            except redis.RedisError:
                pass  # the slot lapses by itself


# --- the call --------------------------------------------------------------------------------------------------


def chat(session: Session | None, workspace_id: int, provider_id: int | None, messages: list[dict], *,
         tools: list[dict] | None = None, json_schema: dict | None = None, temperature: float | None = None,
         max_tokens: int = 512, purpose: str = "step") -> ChatAnswer:
    """One chat completion with the workspace's provider.

    Args:
        session: the caller's session, kept in the signature for callers; ``chat`` does its reads and its usage
            write in short transactions of its own, so that no connection is held during the call. Callers should
            not hold a transaction open across ``chat`` either (it takes seconds).
        workspace_id: the caller's workspace; a provider of another workspace is not found.
        provider_id: a provider of the workspace, or None for its default.
        messages: OpenAI-style messages. The lead's text belongs only in ``user`` messages.
        tools: OpenAI function tools (``{"type": "function", "function": {name, description, parameters}}``,
            or the bare ``{name, description, parameters}``). On a provider without tool calling they become a
            strict JSON answer turned back into ``ToolCall`` objects — unless ``json_schema`` is given too.
        json_schema: ask for a JSON answer matching this schema (``text`` holds it, to be parsed by the caller):
            always when no tools are given; with tools, only on a provider without tool calling (the caller's own
            JSON stand-in for its tools).
        temperature: None for the provider's default.
        max_tokens: the answer's length cap (1..16384).
        purpose: what the call is for, recorded with its usage (``step``, ``summary``, ``test``, ``chat``).

    Raises:
        AIError: every failure (see ``AIError.kind``); an unknown provider id is ``ProviderNotFound`` (kind
            ``config``, also a ``NotFound``).
    """
    # Short transactions of our own, before and after the call: no connection is held while the model thinks
    # (a pool of callers waiting on slots while holding connections would starve the usage writes).
    with session_scope() as own:
        provider = load_provider(own, workspace_id, provider_id)
        settings = ai_settings(own, workspace_id)
        spent = bool(settings.monthly_token_budget) and (
            tokens_this_month(own, workspace_id) >= settings.monthly_token_budget)
    if spent:
        record_usage(workspace_id, provider.id, purpose, provider.model, "budget")
        raise AIError("budget", "monthly token budget exhausted")
    return call_provider(provider, settings, messages, tools=tools, json_schema=json_schema, temperature=temperature,
                         max_tokens=max_tokens, purpose=purpose)


def call_provider(provider: ProviderConfig, settings: AISettings, messages: list[dict], *, tools: list[dict] | None,
                  json_schema: dict | None, temperature: float | None, max_tokens: int,
                  purpose: str) -> ChatAnswer:
    """The call itself, for a provider already loaded (``chat``, and *Testar conexão*, which forces tool calling):
    one attempt within a concurrency slot, its usage recorded. No budget check (``chat`` does it)."""
    request = build_request(provider, messages, tools=tools, json_schema=json_schema, temperature=temperature,
                            max_tokens=max_tokens)
    json_tools = bool(tools) and not provider.use_tools and json_schema is None
    client = client_for(provider.base_url, provider.api_key, provider.timeout_s)
    workspace_id = provider.workspace_id
    latency_ms = 0
    try:
        with call_slot(workspace_id, settings.max_concurrent_calls, provider.timeout_s, provider.timeout_s):
            started = time.monotonic()
            try:
                response = client.chat.completions.create(**request)
            finally:
                latency_ms = int((time.monotonic() - started) * 1000)
    except openai.OpenAIError as exc:
        error = map_error(exc, provider.api_key)
        error.latency_ms = latency_ms
    except AIError as exc:  # no free slot: the provider was not called
        error = exc
    else:
        error = None
    if error is not None:
        record_usage(workspace_id, provider.id, purpose, provider.model, error.kind, latency_ms=latency_ms)
        log.info("ai call failed: workspace=%s provider=%s model=%s kind=%s latency_ms=%s", workspace_id,
                 provider.id, provider.model, error.kind, latency_ms)
        raise error from None
    answer = parse_response(response, provider.model, latency_ms, json_tools=json_tools, prices=settings.prices)
    record_usage(workspace_id, provider.id, purpose, answer.model, "ok", prompt_tokens=answer.prompt_tokens,
                 completion_tokens=answer.completion_tokens, total_tokens=answer.total_tokens, latency_ms=latency_ms,
                 cost_estimate=answer.cost_estimate)
    log.info("ai call: workspace=%s provider=%s model=%s tokens=%s latency_ms=%s tool_calls=%s", workspace_id,
             provider.id, answer.model, answer.total_tokens, latency_ms, len(answer.tool_calls))
    return answer


def build_request(provider: ProviderConfig, messages: list[dict], *, tools: list[dict] | None,
                  json_schema: dict | None, temperature: float | None, max_tokens: int) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for this provider and call."""
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise AIError("config", f"max_tokens must be 1..{MAX_TOKENS_LIMIT}")
    request: dict[str, Any] = {
        "model": provider.model, "messages": list(messages), "max_tokens": max_tokens, "stream": False,
        "temperature": provider.temperature if temperature is None else temperature,
    }
    functions = [normalise_tool(tool) for tool in tools or []]
    if functions and provider.use_tools:
        request["tools"] = [{"type": "function", "function": fn} for fn in functions]
        request["tool_choice"] = "auto"
    elif functions and json_schema is not None:
        # No tool calling, and the caller said which JSON stands for its tools: ask for that (it parses ``text``).
        request["response_format"] = _response_format("answer", json_schema)
    elif functions:
        schema = tools_envelope(functions)
        # Our own instruction, after the caller's system messages and before the conversation.
        request["messages"] = _insert_system(list(messages), json_tools_instruction(functions))
        request["response_format"] = _response_format("answer", schema)
    elif json_schema is not None:
        request["response_format"] = _response_format("answer", json_schema)
    return request


def normalise_tool(tool: dict) -> dict:
    """The function part of a tool definition, in either OpenAI's wrapped form or bare."""
    fn = tool.get("function", tool) if tool.get("type", "function") == "function" else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise AIError("config", "a tool needs a name")
    out = {"name": fn["name"], "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def tools_envelope(functions: list[dict]) -> dict:
    """The JSON schema of an answer that stands for tool calls: a reply and a list of calls, each one of the tools
    with its own arguments' schema."""
    variants = [{"type": "object", "properties": {"name": {"type": "string", "enum": [fn["name"]]},
                                                   "arguments": fn["parameters"]},
                 "required": ["name", "arguments"], "additionalProperties": False} for fn in functions]
    return {"type": "object",
            "properties": {"reply": {"type": ["string", "null"]},
                           "tool_calls": {"type": "array", "items": {"anyOf": variants}}},
            "required": ["reply", "tool_calls"], "additionalProperties": False}


def json_tools_instruction(functions: list[dict]) -> str:
    """The system instruction that asks a provider without tool calling for the JSON envelope."""
    listing = json.dumps([{k: fn[k] for k in ("name", "description", "parameters") if k in fn} for fn in functions],
                         ensure_ascii=False)
    return ("Answer with ONE JSON object and nothing else: "
            '{"reply": <text for the user, or null>, "tool_calls": [{"name": <tool name>, "arguments": {...}}]}. '
            "Use tool_calls where you would call a tool (an empty list otherwise). Tools: " + listing)


def _insert_system(messages: list[dict], text: str) -> list[dict]:
    at = 0
    while at < len(messages) and messages[at].get("role") in ("system", "developer"):
        at += 1
    return messages[:at] + [{"role": "system", "content": text}] + messages[at:]


def _response_format(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": is_strict(schema)}}


def is_strict(schema: Any) -> bool:
    """Whether ``schema`` meets OpenAI's strict mode (every object closed and listing all its properties as
    required); providers refuse ``strict`` for other schemas, so we ask for it only when it holds."""
    if isinstance(schema, list):
        return all(is_strict(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(props):
            return False
    return all(is_strict(value) for key, value in schema.items() if key not in ("enum", "const", "default"))


def parse_response(response: Any, fallback_model: str, latency_ms: int, *, json_tools: bool,
                   prices: dict[str, ModelPrice]) -> ChatAnswer:
    """A ``ChatAnswer`` from the SDK's completion (tolerant of servers that leave out usage or the model)."""
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    total_tokens = int(getattr(usage, "total_tokens", 0) or 0) or prompt_tokens + completion_tokens
    model = getattr(response, "model", None) or fallback_model
    choices = getattr(response, "choices", None) or []
    message = choices[0].message if choices else None
    text = getattr(message, "content", None) if message is not None else None
    calls: list[ToolCall] = []
    raw_text = None
    for index, call in enumerate(getattr(message, "tool_calls", None) or []):
        fn = getattr(call, "function", None)
        if fn is None:  # a "custom" tool call: we never offer those
            continue
        calls.append(_tool_call(getattr(call, "id", None) or f"call-{index}", fn.name, fn.arguments))
    if json_tools:
        text, calls, raw_text = _from_envelope(text)
    return ChatAnswer(text=text if text else None, tool_calls=tuple(calls), model=model, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens, total_tokens=total_tokens, latency_ms=latency_ms,
                      cost_estimate=estimate_cost(prices, model, prompt_tokens, completion_tokens), raw_text=raw_text)


def _tool_call(call_id: str, name: str, raw: Any) -> ToolCall:
    if isinstance(raw, dict):  # some servers send the arguments as an object, not a JSON string
        return ToolCall(call_id, name, raw, json.dumps(raw, ensure_ascii=False))
    raw = raw if isinstance(raw, str) else ""
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        parsed = None
    return ToolCall(call_id, name, parsed if isinstance(parsed, dict) else None, raw)


def _from_envelope(content: str | None) -> tuple[str | None, list[ToolCall], str | None]:
    """Reply and tool calls out of a JSON answer; (None, [], content) when it is not the envelope."""
    try:
        data = json.loads(_strip_fence(content or ""))
    except ValueError:
        return None, [], content
    if not isinstance(data, dict):
        return None, [], content
    if "reply" not in data and "tool_calls" not in data:  # JSON of another shape: the caller may know it
        return content, [], None
    reply = data.get("reply")
    calls = []
    for index, item in enumerate(data.get("tool_calls") or [] if isinstance(data.get("tool_calls"), list) else []):
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            arguments = item.get("arguments")
            raw = json.dumps(arguments, ensure_ascii=False) if isinstance(arguments, dict) else str(arguments)
            calls.append(ToolCall(f"json-{index}", item["name"], arguments if isinstance(arguments, dict) else None,
                                  raw))
    return (reply if isinstance(reply, str) else None), calls, None


def _strip_fence(text: str) -> str:
    """JSON wrapped in a Markdown code fence (small local models do it) without the fence."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


# --- helpers for the AI step (the interface the AI-ENGINE helper coded against) -------------------------------


def master_prompt(session: Session, workspace_id: int) -> str:
    """The workspace's *Prompt mestre* (persona and rules placed before every AI step's instructions); "" if none."""
    return ai_settings(session, workspace_id).master_prompt


def list_providers(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's providers as ``{"id", "name", "is_default"}``, the default first (the AI step's provider
    picker); ids and names only, never a key or URL."""
    with session_scope() as session:
        rows = session.execute(select(AIProvider.id, AIProvider.name, AIProvider.is_default)
                               .where(AIProvider.workspace_id == actor.workspace_id)
                               .order_by(AIProvider.is_default.desc(), AIProvider.id)).all()
    return [{"id": row.id, "name": row.name, "is_default": row.is_default} for row in rows]


def save_provider(session: Session, workspace_id: int, name: str, *, base_url: str, model: str, api_key: str | None,
                  tool_calling: bool = True, is_default: bool = False, timeout_s: float = 30.0) -> int:
    """Store a *Personalizado* provider in the caller's session (tests, scripts; no role check, no validation:
    the panel goes through ``workbench.services.ai_providers``); the key encrypted. The workspace's first provider,
    or one with ``is_default``, becomes its default. Returns its id."""
    first = session.scalar(select(AIProvider.id).where(AIProvider.workspace_id == workspace_id).limit(1)) is None
    if is_default and not first:
        session.execute(update(AIProvider).where(AIProvider.workspace_id == workspace_id, AIProvider.is_default)
                        .values(is_default=False))
    row = AIProvider(workspace_id=workspace_id, name=name, preset="custom", base_url=base_url, model=model,
                     api_key=encrypt_secret(api_key) if api_key else None, key_last4=api_key[-4:] if api_key else None,
                     is_default=first or is_default, timeout_s=float(timeout_s),
                     tool_mode="tools" if tool_calling else "json")
    session.add(row)
    session.flush()
    return row.id
