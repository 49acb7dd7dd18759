"""Configurações › IA: a workspace's named AI providers and its AI settings (admins only).

A provider is an OpenAI-compatible chat endpoint picked from a preset — OpenAI, Google Gemini (its
OpenAI-compatible endpoint), Cloudflare Workers AI (account id + token) or *Personalizado* (any base URL: Ollama,
llama.cpp server, vLLM, OpenRouter) — with a model, an API key, a default temperature and a request timeout.
Several may exist; one is the workspace's default (the first one created becomes it).

The key is encrypted at rest (``workbench.store.crypto``) and never leaves the server again: views carry only its
last 4 characters. *Testar conexão* (``test_connection``) makes one real small call offering one tool and stores
whether the provider called it (its tool-calling capability, which ``tool_mode`` may override).

Every function takes the acting ``Actor``: providers are changed by admins; ``provider_choices`` (for the AI step's
form) is open to admins and supervisors. Another workspace's provider id is "not found".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import openai
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.services import ai_client, workspace_settings
from workbench.services.ai_client import AIError
from workbench.services.auth import Actor
from workbench.services.workspace_settings import AISettings
from workbench.store.crypto import encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import AI_PRESETS, AI_TOOL_MODES, ActivityEvent, AIProvider, AIUsageMonth, is_row_id
from workbench.store.text import clean_text

GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta/openai/"
CLOUDFLARE_URL = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1"
PRESET_URLS = {"openai": "https://api.openai.com/v1", "gemini": GEMINI_URL, "cloudflare": CLOUDFLARE_URL}
PRESET_MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash",
                 "cloudflare": "@cf/meta/llama-3.1-8b-instruct", "custom": ""}
# Hosted presets refuse calls without a key; a local server (custom) usually needs none.
KEY_REQUIRED = frozenset({"openai", "gemini", "cloudflare"})
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
MAX_NAME = 120
MAX_MODEL = 200
MAX_URL = 500
MAX_KEY = 1000
MAX_MODELS_LISTED = 500
TIMEOUT_RANGE = (1.0, 300.0)
TEMPERATURE_RANGE = (0.0, 2.0)
TEST_TOOL = {"type": "function", "function": {
    "name": "confirmar_teste", "description": "Confirms that the connection test worked.",
    "parameters": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                   "additionalProperties": False}}}
TEST_MESSAGES = [
    {"role": "system", "content": "This is a connection test. Call the tool confirmar_teste with ok=true."},
    {"role": "user", "content": "Connection test."},
]


@dataclass(frozen=True)
class ProviderView:
    """A provider as the panel shows it: never the key, only whether there is one and its last 4 characters."""

    id: int
    name: str
    preset: str
    base_url: str
    model: str
    account_id: str
    key_last4: str | None
    is_default: bool
    temperature: float
    timeout_s: float
    tool_mode: str
    supports_tools: bool | None
    tested_at: datetime | None
    test_latency_ms: int | None

    @property
    def uses_tools(self) -> bool:
        """Whether calls use tool calling (else a strict JSON answer)."""
        return ai_client.uses_tools(self.tool_mode, self.supports_tools)


@dataclass(frozen=True)
class ConnectionCheck:
    """What *Testar conexão* found: ``error_key`` (catalog) is None when the provider answered."""

    ok: bool
    model: str
    latency_ms: int
    supports_tools: bool | None
    error_key: str | None = None
    detail: str = ""


def _view(row: AIProvider) -> ProviderView:
    return ProviderView(
        id=row.id, name=row.name, preset=row.preset, base_url=row.base_url, model=row.model,
        account_id=str((row.config or {}).get("account_id") or ""), key_last4=row.key_last4,
        is_default=row.is_default, temperature=row.temperature, timeout_s=row.timeout_s, tool_mode=row.tool_mode,
        supports_tools=row.supports_tools, tested_at=row.tested_at, test_latency_ms=row.test_latency_ms)


def _get(session: Session, actor: Actor, provider_id: Any, *, lock: bool = False) -> AIProvider:
    if not is_row_id(provider_id):
        raise NotFound("ai provider", key="error.ai_provider_not_found")
    query = select(AIProvider).where(AIProvider.id == provider_id, AIProvider.workspace_id == actor.workspace_id)
    row = session.scalars(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("ai provider", key="error.ai_provider_not_found")
    return row


def _audit(session: Session, actor: Actor, kind: str, row: AIProvider, changed: list[str]) -> None:
    """Who added, changed or removed a provider, and which settings (a new key is named, never its value)."""
    session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind=kind,
                              subject_type="ai_provider", subject_id=row.id,
                              data={"name": row.name, "changed": sorted(changed)}))


def list_providers(actor: Actor) -> list[ProviderView]:
    """The workspace's providers, the default first, then by name (admins)."""
    actor.require("admin")
    with session_scope() as session:
        rows = session.scalars(select(AIProvider).where(AIProvider.workspace_id == actor.workspace_id)
                               .order_by(AIProvider.is_default.desc(), func.lower(AIProvider.name))).all()
        return [_view(row) for row in rows]


def get_provider(actor: Actor, provider_id: int) -> ProviderView:
    """One provider of the workspace (admins)."""
    actor.require("admin")
    with session_scope() as session:
        return _view(_get(session, actor, provider_id))


def provider_choices(actor: Actor) -> list[tuple[int, str, bool]]:
    """(id, name, is_default) of the workspace's providers, for the AI step's form (admins and supervisors)."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        rows = session.execute(select(AIProvider.id, AIProvider.name, AIProvider.is_default)
                               .where(AIProvider.workspace_id == actor.workspace_id)
                               .order_by(AIProvider.is_default.desc(), func.lower(AIProvider.name))).all()
        return [(row.id, row.name, row.is_default) for row in rows]


def base_url_for(preset: str, base_url: str = "", account_id: str = "") -> str:
    """The chat API's base URL of a preset (a custom one is checked: http(s), with a host)."""
    if preset not in AI_PRESETS:
        raise InvalidInput("unknown preset", key="error.ai_preset")
    if preset == "cloudflare":
        account_id = (account_id or "").strip()
        if not _ACCOUNT_ID.match(account_id):
            raise InvalidInput("bad account id", key="error.ai_account_id")
        return CLOUDFLARE_URL.format(account_id=account_id)
    if preset != "custom":
        return PRESET_URLS[preset]
    url = (base_url or "").strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("bad base url", key="error.ai_base_url")
    return url


def _clean_fields(values: dict[str, Any], row: AIProvider | None) -> dict[str, Any]:
    """The columns to store from a form's values (the ones given), validated; refusals are ``InvalidInput``."""
    current = _view(row) if row is not None else None
    out: dict[str, Any] = {}
    if "name" in values or row is None:
        name = clean_text(str(values.get("name") or ""), MAX_NAME + 1)[0].strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidInput("bad name", key="error.ai_name", max=MAX_NAME)
        out["name"] = name
    preset = values.get("preset", current.preset if current else "custom")
    if {"preset", "base_url", "account_id"} & values.keys() or row is None:
        account_id = str(values.get("account_id", current.account_id if current else "") or "").strip()
        out["base_url"] = base_url_for(preset, str(values.get("base_url", current.base_url if current else "") or ""),
                                       account_id)
        out["preset"] = preset
        out["config"] = {"account_id": account_id} if preset == "cloudflare" else {}
    if "model" in values or row is None:
        model = clean_text(str(values.get("model") or PRESET_MODELS.get(preset, "")), MAX_MODEL + 1)[0].strip()
        if not model or len(model) > MAX_MODEL:
            raise InvalidInput("bad model", key="error.ai_model", max=MAX_MODEL)
        out["model"] = model
    if "temperature" in values:
        out["temperature"] = _number(values["temperature"], TEMPERATURE_RANGE, "error.ai_temperature")
    if "timeout_s" in values:
        out["timeout_s"] = _number(values["timeout_s"], TIMEOUT_RANGE, "error.ai_timeout_range")
    if "tool_mode" in values:
        if values["tool_mode"] not in AI_TOOL_MODES:
            raise InvalidInput("bad tool mode", key="error.ai_tool_mode")
        out["tool_mode"] = values["tool_mode"]
    key = str(values.get("api_key") or "").strip()
    if key:
        if len(key) > MAX_KEY or any(ch.isspace() for ch in key) or not key.isprintable():
            raise InvalidInput("bad key", key="error.ai_key")
        out["api_key"] = encrypt_secret(key)
        out["key_last4"] = key[-4:]
    elif values.get("clear_key"):
        out["api_key"] = None
        out["key_last4"] = None
    has_key = bool(out["api_key"]) if "api_key" in out else bool(row is not None and row.api_key)
    if out.get("preset", preset) in KEY_REQUIRED and not has_key:
        raise InvalidInput("key required", key="error.ai_key_required")
    if "base_url" in out and row is not None and out["base_url"] != row.base_url:
        out["supports_tools"] = None  # another server: what the last check found no longer holds
        out["tested_at"] = None
    if "model" in out and row is not None and out["model"] != row.model:
        out["supports_tools"] = None
        out["tested_at"] = None
    return out


def _number(value: Any, bounds: tuple[float, float], key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("not a number", key=key, min=bounds[0], max=bounds[1]) from None
    if not bounds[0] <= number <= bounds[1]:  # also refuses NaN
        raise InvalidInput("out of range", key=key, min=bounds[0], max=bounds[1])
    return number


def create_provider(actor: Actor, values: dict[str, Any]) -> ProviderView:
    """Add a provider (admins). ``values``: name, preset, model, api_key, base_url (custom), account_id
    (cloudflare), temperature, timeout_s, tool_mode, is_default. The workspace's first provider is its default."""
    actor.require("admin")
    columns = _clean_fields(values, None)
    with session_scope() as session:
        first = not session.scalar(select(func.count()).select_from(AIProvider)
                                   .where(AIProvider.workspace_id == actor.workspace_id))
        make_default = first or bool(values.get("is_default"))
        if make_default:
            _clear_default(session, actor.workspace_id)
        row = AIProvider(workspace_id=actor.workspace_id, is_default=make_default, **columns)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict("name taken", key="error.ai_name_taken") from None
        _audit(session, actor, "ai_provider_added", row, [c for c in columns if c != "key_last4"])
        return _view(row)


def update_provider(actor: Actor, provider_id: int, values: dict[str, Any]) -> ProviderView:
    """Change a provider (admins); only the keys given change. An empty ``api_key`` keeps the stored key
    (``clear_key`` removes it)."""
    actor.require("admin")
    with session_scope() as session:
        row = _get(session, actor, provider_id, lock=True)
        changed = []
        for column, value in _clean_fields(values, row).items():
            if getattr(row, column) != value:
                changed.append(column)
            setattr(row, column, value)
        if values.get("is_default") and not row.is_default:
            _clear_default(session, actor.workspace_id)
            row.is_default = True
            changed.append("is_default")
        try:
            session.flush()
        except IntegrityError:
            raise Conflict("name taken", key="error.ai_name_taken") from None
        changed = [c for c in changed if c not in ("key_last4", "supports_tools", "tested_at")]
        if changed:
            _audit(session, actor, "ai_provider_changed", row, changed)
        return _view(row)


def set_default(actor: Actor, provider_id: int) -> ProviderView:
    """Make a provider the workspace's default (admins)."""
    return update_provider(actor, provider_id, {"is_default": True})


def delete_provider(actor: Actor, provider_id: int) -> None:
    """Remove a provider (admins); when it was the default, the oldest remaining one becomes the default. Its
    usage rows stay (counted in the budget) without it."""
    actor.require("admin")
    with session_scope() as session:
        row = _get(session, actor, provider_id, lock=True)
        was_default = row.is_default
        _audit(session, actor, "ai_provider_removed", row, [])
        session.delete(row)
        session.flush()
        if was_default:
            heir = session.scalars(select(AIProvider).where(AIProvider.workspace_id == actor.workspace_id)
                                   .order_by(AIProvider.id).limit(1)).first()
            if heir is not None:
                heir.is_default = True


def _clear_default(session: Session, workspace_id: int) -> None:
    session.execute(update(AIProvider).where(AIProvider.workspace_id == workspace_id, AIProvider.is_default)
                    .values(is_default=False))
    session.flush()


# -- talking to the provider ------------------------------------------------------------------------------------


def list_models(actor: Actor, provider_id: int) -> list[str]:
    """The model ids the provider lists (``/models``), sorted; at most 500 (admins).

    Raises:
        AIError: the provider could not be reached or refused (the page then keeps the free-text model).
    """
    actor.require("admin")
    with session_scope() as session:
        config = ai_client.load_provider(session, actor.workspace_id, _get(session, actor, provider_id).id)
    client = ai_client.client_for(config.base_url, config.api_key, config.timeout_s)
    try:
        ids = []
        for model in client.models.list():
            ids.append(str(model.id).removeprefix("models/"))
            if len(ids) >= MAX_MODELS_LISTED:
                break
    except openai.OpenAIError as exc:
        raise ai_client.map_error(exc, config.api_key) from None
    return sorted(set(ids))


def check_connection(actor: Actor, provider_id: int) -> ConnectionCheck:
    """*Testar conexão*: one real small call offering one tool (admins). Stores whether the model called it
    (the provider's tool-calling capability), the latency and when; a provider that refuses tools (HTTP 400)
    gets one plain call to tell "no tool calling" from "broken". Both count as usage (purpose ``test``)."""
    actor.require("admin")
    with session_scope() as session:
        config = ai_client.load_provider(session, actor.workspace_id, _get(session, actor, provider_id).id)
        settings = ai_client.ai_settings(session, actor.workspace_id)
    tools_provider = replace(config, use_tools=True)
    try:
        answer = _test_call(tools_provider, settings, tools=[TEST_TOOL])
        supports = any(call.name == "confirmar_teste" and call.arguments is not None for call in answer.tool_calls)
    except AIError as exc:
        if exc.kind != "bad_request":
            return _store_test(actor, provider_id, ConnectionCheck(False, config.model, exc.latency_ms, None,
                                                              exc.key, exc.detail))
        try:  # the server refused the tools: does it answer at all?
            answer = _test_call(config, settings, tools=None)
        except AIError as plain:
            return _store_test(actor, provider_id, ConnectionCheck(False, config.model, plain.latency_ms, None,
                                                              plain.key, plain.detail))
        supports = False
    return _store_test(actor, provider_id, ConnectionCheck(True, answer.model, answer.latency_ms, supports))


def _test_call(config: ai_client.ProviderConfig, settings: AISettings, *,
               tools: list[dict] | None) -> ai_client.ChatAnswer:
    return ai_client.call_provider(config, settings, TEST_MESSAGES, tools=tools, json_schema=None, temperature=0,
                                   max_tokens=64, purpose="test")


def _store_test(actor: Actor, provider_id: int, result: ConnectionCheck) -> ConnectionCheck:
    with session_scope() as session:
        row = _get(session, actor, provider_id, lock=True)
        row.tested_at = now()
        row.test_latency_ms = result.latency_ms
        if result.ok:
            row.supports_tools = result.supports_tools
    return result


# -- workspace AI settings and usage ----------------------------------------------------------------------------


def get_ai_settings(actor: Actor) -> AISettings:
    """The workspace's AI settings (admins and supervisors may read them: the AI step shows the master prompt)."""
    actor.require("admin", "supervisor")
    return workspace_settings.get_setting(actor, "ai")  # type: ignore[return-value]


def save_ai_settings(actor: Actor, values: dict[str, Any]) -> AISettings:
    """Store the AI settings (admins): master prompt, monthly token budget, most concurrent calls, prices."""
    actor.require("admin")
    return workspace_settings.save_setting(actor, "ai", values)  # type: ignore[return-value]


@dataclass(frozen=True)
class UsageLine:
    """This month's use for one purpose (``step``, ``summary``, ``test``, ``chat``)."""

    purpose: str
    calls: int
    failed: int
    total_tokens: int
    cost_estimate: float


@dataclass(frozen=True)
class UsageSummary:
    """This month's AI use of the workspace, in all and by purpose (most tokens first)."""

    calls: int
    failed: int
    total_tokens: int
    cost_estimate: float
    budget: int
    budget_left: int | None
    by_purpose: tuple[UsageLine, ...] = ()


def usage_this_month(actor: Actor) -> UsageSummary:
    """Calls, tokens and estimated cost of the workspace this month, against its budget (admins)."""
    actor.require("admin")
    with session_scope() as session:
        rows = session.execute(select(
            AIUsageMonth.purpose, AIUsageMonth.calls, AIUsageMonth.failed, AIUsageMonth.total_tokens,
            AIUsageMonth.cost_estimate,
        ).where(AIUsageMonth.workspace_id == actor.workspace_id,
                AIUsageMonth.month == ai_client.current_month(actor.workspace_id))).all()
        settings = ai_client.ai_settings(session, actor.workspace_id)
    lines = sorted((UsageLine(purpose, int(calls), int(failed), int(tokens), float(cost))
                    for purpose, calls, failed, tokens, cost in rows), key=lambda line: (-line.total_tokens,
                                                                                          line.purpose))
    tokens = sum(line.total_tokens for line in lines)
    left = max(0, settings.monthly_token_budget - tokens) if settings.monthly_token_budget else None
    return UsageSummary(calls=sum(line.calls for line in lines), failed=sum(line.failed for line in lines),
                        total_tokens=tokens, cost_estimate=sum(line.cost_estimate for line in lines),
                        budget=settings.monthly_token_budget, budget_left=left, by_purpose=tuple(lines))
