"""One chat call to a workspace's AI provider over the OpenAI-compatible chat API (the OpenAI Python SDK).

MINIMAL VERSION written by the AI-ENGINE helper against the interface agreed with AI-PROVIDERS (which owns this
module: Configurações › IA, presets, budget, price table, *Testar conexão*). It keeps exactly that interface —
``ToolCall``, ``ChatAnswer``, ``AIError``, ``chat`` — plus the few helpers the AI step needs (``master_prompt``,
``list_providers``, ``save_provider``); the lead reconciles both versions.

Providers are ``integrations`` rows of kind ``ai_provider``: ``config`` holds base URL, model, whether the
provider does tool calling, default temperature, request timeout and whether it is the workspace's default;
``secret`` the Fernet-encrypted API key (``workbench/store/crypto.py``), never logged nor returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.services.auth import Actor
from workbench.store.crypto import decrypt_secret, encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import Integration, Setting

log = logging.getLogger(__name__)

PROVIDER_KIND = "ai_provider"
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ToolCall:
    """One tool call of the model: ``arguments`` None when ``raw_arguments`` is not a JSON object."""

    id: str
    name: str
    arguments: dict | None
    raw_arguments: str


@dataclass(frozen=True)
class ChatAnswer:
    """The model's answer and what it cost."""

    text: str | None
    tool_calls: tuple[ToolCall, ...]
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_ms: int
    cost_estimate: float | None


Kind = Literal["timeout", "rate_limited", "server", "auth", "bad_request", "budget", "config"]


class AIError(Exception):
    """A failed call: ``kind`` says why, ``retryable`` whether another try may succeed. The message never holds
    the key."""

    def __init__(self, kind: Kind, message: str = "", retryable: bool | None = None) -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.retryable = kind in ("timeout", "rate_limited", "server") if retryable is None else retryable


@dataclass(frozen=True)
class _Provider:
    id: int
    name: str
    base_url: str
    model: str
    tool_calling: bool
    temperature: float | None
    timeout_s: float
    secret: bytes | None


def _provider(session: Session, workspace_id: int, provider_id: int | None) -> _Provider:
    query = select(Integration).where(Integration.workspace_id == workspace_id, Integration.kind == PROVIDER_KIND)
    rows = session.scalars(query.order_by(Integration.id)).all()
    if provider_id is not None:
        row = next((r for r in rows if r.id == provider_id), None)
    else:
        row = next((r for r in rows if (r.config or {}).get("is_default")), rows[0] if rows else None)
    if row is None:
        raise AIError("config", "no AI provider configured")
    config = row.config or {}
    if not config.get("base_url") or not config.get("model"):
        raise AIError("config", "provider without base URL or model")
    return _Provider(row.id, row.name, str(config["base_url"]), str(config["model"]),
                     bool(config.get("tool_calling", True)), config.get("temperature"),
                     float(config.get("timeout_s") or DEFAULT_TIMEOUT_S), row.secret)


def chat(session: Session | None, workspace_id: int, provider_id: int | None, messages: list[dict], *,
         tools: list[dict] | None, json_schema: dict | None, temperature: float | None,
         max_tokens: int) -> ChatAnswer:
    """One call to the provider (workspace default when ``provider_id`` is None); no retries (the outside call's).

    Tool calling when the provider does it and ``tools`` are given, else a strict JSON answer when
    ``json_schema`` is given. Raises ``AIError``. With ``session`` None the provider is read in a short
    transaction of its own, so none is open while the model answers.
    """
    if session is None:
        with session_scope() as own:
            provider = _provider(own, workspace_id, provider_id)
    else:
        provider = _provider(session, workspace_id, provider_id)
    client = _client(provider)
    kwargs: dict[str, Any] = {"model": provider.model, "messages": messages, "max_tokens": max_tokens,
                              "stream": False}
    temp = temperature if temperature is not None else provider.temperature
    if temp is not None:
        kwargs["temperature"] = temp
    if tools and provider.tool_calling:
        kwargs["tools"] = tools
    elif json_schema is not None:
        kwargs["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "resposta", "schema": json_schema, "strict": True}}
    started = time.perf_counter()
    try:
        completion = client.chat.completions.create(**kwargs)
    except openai.APITimeoutError as exc:
        raise AIError("timeout", "the provider did not answer in time") from exc
    except openai.RateLimitError as exc:
        raise AIError("rate_limited", "HTTP 429") from exc
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise AIError("auth", f"HTTP {exc.status_code}") from exc
    except openai.APIStatusError as exc:
        kind: Kind = "server" if exc.status_code >= 500 else "bad_request"
        raise AIError(kind, f"HTTP {exc.status_code}") from exc
    except openai.APIConnectionError as exc:
        raise AIError("server", "connection failed") from exc
    latency = int((time.perf_counter() - started) * 1000)
    if not completion.choices:
        raise AIError("server", "empty answer")
    message = completion.choices[0].message
    calls = []
    for call in message.tool_calls or ():
        raw = call.function.arguments or ""
        try:
            args = json.loads(raw)
        except ValueError:
            args = None
        calls.append(ToolCall(call.id, call.function.name, args if isinstance(args, dict) else None, raw))
    usage = completion.usage
    return ChatAnswer(text=message.content, tool_calls=tuple(calls), model=completion.model or provider.model,
                      prompt_tokens=usage.prompt_tokens if usage else 0,
                      completion_tokens=usage.completion_tokens if usage else 0,
                      total_tokens=usage.total_tokens if usage else 0, latency_ms=latency, cost_estimate=None)


_clients: dict[tuple[int, str, str, float], openai.OpenAI] = {}
_clients_guard = threading.Lock()


def _client(provider: _Provider) -> openai.OpenAI:
    """One SDK client (and its connection pool) per provider setting, reused by every call of the process:
    building one costs more CPU than a call's own work. A changed URL, key or timeout makes a new one."""
    key = decrypt_secret(provider.secret) if provider.secret else "none"
    ident = (provider.id, provider.base_url, hashlib.sha256(key.encode()).hexdigest(), provider.timeout_s)
    with _clients_guard:
        client = _clients.get(ident)
        if client is None:
            client = openai.OpenAI(base_url=provider.base_url, api_key=key, max_retries=0,
                                   timeout=httpx.Timeout(provider.timeout_s, connect=min(provider.timeout_s, 10.0)))
            _clients[ident] = client
    return client


def master_prompt(session: Session, workspace_id: int) -> str:
    """The workspace's *Prompt mestre* (persona and rules prepended to every AI step); "" when none."""
    value = session.scalar(select(Setting.value).where(Setting.workspace_id == workspace_id, Setting.key == "ai"))
    text = value.get("master_prompt") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else ""


def list_providers(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's providers as ``{"id", "name"}`` (the AI step's provider picker); never the key."""
    with session_scope() as session:
        rows = session.execute(select(Integration.id, Integration.name).where(
            Integration.workspace_id == actor.workspace_id, Integration.kind == PROVIDER_KIND)
            .order_by(Integration.id)).all()
    return [{"id": row_id, "name": name} for row_id, name in rows]


def save_provider(session: Session, workspace_id: int, name: str, *, base_url: str, model: str, api_key: str | None,
                  tool_calling: bool = True, is_default: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """Store a provider (the key encrypted); returns its id. (The providers helper's settings page replaces it.)"""
    row = Integration(workspace_id=workspace_id, kind=PROVIDER_KIND, name=name,
                      config={"base_url": base_url, "model": model, "tool_calling": tool_calling,
                              "is_default": is_default, "timeout_s": timeout_s},
                      secret=encrypt_secret(api_key) if api_key else None)
    session.add(row)
    session.flush()
    return row.id
