"""Per-workspace settings stored as JSON rows (``settings`` table), validated by pydantic models.

``save_setting`` turns every refusal into ``InvalidInput`` (with a catalog key), so pages show a message
instead of a pydantic traceback. Rules that involve more than one field (an enabled reply needs a text) are
checked on save only: a stored value is always loadable, and readers such as ``engine.worker.dispatch`` stay
defensive about it.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from engine.core.nodes.delay import BusinessHours
from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.services.auth import Actor
from workbench.store.db import session_scope
from workbench.store.models import Setting
from workbench.store.text import clean_json


class DefaultReply(BaseModel):
    """The reply the bot sends when nothing else answers a contact's message."""

    enabled: bool = False
    mode: Literal["every", "once_24h"] = "once_24h"
    text: str = Field(default_factory=lambda: t("settings.default_reply.text_default"), max_length=4096)


class BotSettings(BaseModel):
    """How the bot shares a conversation with the agents."""

    # 0 = the bot stays paused after an agent's reply until someone gives it back
    auto_resume_minutes: int = Field(0, ge=0, le=60 * 24 * 30)
    # blue ticks on the contact's messages the bot answers (funnel or default reply), as a person would
    read_receipts: bool = True


class ModelPrice(BaseModel):
    """What a model costs, in US dollars per million tokens (an estimate: providers change their prices)."""

    input_per_1m: float = Field(0.0, ge=0, le=10_000)
    output_per_1m: float = Field(0.0, ge=0, le=10_000)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    # USD per 1M tokens (input, output) from the providers' public price pages at the time of writing; edit the
    # table in Configurações › IA when they change. Local models (llama.cpp, Ollama) cost nothing per token.
    "gpt-4o-mini": ModelPrice(input_per_1m=0.15, output_per_1m=0.60),
    "gpt-4o": ModelPrice(input_per_1m=2.50, output_per_1m=10.00),
    "gpt-4.1-nano": ModelPrice(input_per_1m=0.10, output_per_1m=0.40),
    "gpt-4.1-mini": ModelPrice(input_per_1m=0.40, output_per_1m=1.60),
    "gpt-4.1": ModelPrice(input_per_1m=2.00, output_per_1m=8.00),
    "gemini-2.0-flash": ModelPrice(input_per_1m=0.10, output_per_1m=0.40),
    "gemini-2.5-flash": ModelPrice(input_per_1m=0.30, output_per_1m=2.50),
    "gemini-2.5-pro": ModelPrice(input_per_1m=1.25, output_per_1m=10.00),
    "@cf/meta/llama-3.1-8b-instruct": ModelPrice(input_per_1m=0.28, output_per_1m=0.83),
    "@cf/meta/llama-3.3-70b-instruct-fp8-fast": ModelPrice(input_per_1m=0.29, output_per_1m=2.25),
}
MAX_PRICES = 100
MAX_MASTER_PROMPT = 8000


class AISettings(BaseModel):
    """The workspace's AI rules (Configurações › IA, admins only): persona, budget, concurrency, prices."""

    # the bot's persona and rules, prepended (as a system message) to every AI step
    master_prompt: str = Field("", max_length=MAX_MASTER_PROMPT)
    # tokens (prompt + completion) per calendar month in the workspace's zone; 0 = no limit
    monthly_token_budget: int = Field(0, ge=0, le=10**12)
    # most model calls of the workspace at once (the outside-calls pool honours it)
    max_concurrent_calls: int = Field(4, ge=1, le=64)
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES), max_length=MAX_PRICES)


class AnalyticsSettings(BaseModel):
    """What the reports count (Painel, Equipe): the tag that marks a qualified lead, the first-response target,
    and the workspace's business hours (the zone is the workspace's)."""

    qualified_tag: str = Field("ia_qualificado", min_length=1, max_length=80)
    sla_minutes: int = Field(60, ge=1, le=60 * 24 * 7)
    hours: BusinessHours = Field(default_factory=BusinessHours)


MAX_RETENTION_DAYS = 3650


class RetentionSettings(BaseModel):
    """How long message bodies and media are kept (Configurações › Geral, admins): off by default; when on, a
    daily job empties older messages (``workbench.services.lgpd.apply_retention``)."""

    enabled: bool = False
    days: int = Field(365, ge=1, le=MAX_RETENTION_DAYS)


SCHEMAS: dict[str, type[BaseModel]] = {"default_reply": DefaultReply, "bot": BotSettings, "ai": AISettings,
                                       "analytics": AnalyticsSettings, "retention": RetentionSettings}
# Who may change each setting (the others: admins and supervisors).
_EDITORS: dict[str, tuple[str, ...]] = {"ai": ("admin",), "retention": ("admin",)}
# Workers read settings on every message; a few seconds of staleness after an edit is acceptable.
_CACHE_TTL_S = 5.0
_cache: dict[tuple[int, str], tuple[float, BaseModel]] = {}


def load_setting(session: Session, workspace_id: int, key: str) -> BaseModel:
    """A workspace setting (its defaults when never saved), cached for a few seconds."""
    hit = _cache.get((workspace_id, key))
    if hit and hit[0] > time.monotonic():
        return hit[1]
    raw = session.scalar(select(Setting.value).where(Setting.workspace_id == workspace_id, Setting.key == key))
    value = SCHEMAS[key].model_validate(raw or {})
    _cache[(workspace_id, key)] = (time.monotonic() + _CACHE_TTL_S, value)
    return value


def get_setting(actor: Actor, key: str) -> BaseModel:
    """Read a setting of the actor's workspace (any role)."""
    with session_scope() as session:
        return load_setting(session, actor.workspace_id, key)


def save_setting(actor: Actor, key: str, value: BaseModel | dict) -> BaseModel:
    """Admins and supervisors change a setting (the AI settings: admins only); the value is validated before it
    is stored."""
    actor.require(*_EDITORS.get(key, ("admin", "supervisor")))
    try:
        model = SCHEMAS[key].model_validate(clean_json(value if isinstance(value, dict) else value.model_dump()))
    except ValidationError as exc:
        raise _invalid(exc) from exc
    _check_rules(key, model)
    with session_scope() as session:
        stmt = pg_insert(Setting).values(workspace_id=actor.workspace_id, key=key, value=model.model_dump())
        session.execute(stmt.on_conflict_do_update(index_elements=[Setting.workspace_id, Setting.key],
                                                   set_={"value": stmt.excluded.value}))
    _cache.pop((actor.workspace_id, key), None)
    return model


def _invalid(exc: ValidationError) -> InvalidInput:
    """The product error for a value pydantic refused; its first problem picks the message."""
    first = exc.errors()[0]
    if first["type"] == "string_too_long":
        return InvalidInput(str(exc), key="error.text_too_long", max=first["ctx"]["max_length"])
    return InvalidInput(str(exc), key="error.setting_invalid")


def _check_rules(key: str, model: BaseModel) -> None:
    """Refuse values that validate field by field but make no sense together."""
    if key == "default_reply" and model.enabled and not model.text.strip():  # type: ignore[attr-defined]
        # An enabled reply with no text would silently answer nothing: say so instead of storing it.
        raise InvalidInput("default reply enabled without text", key="error.default_reply_blank")


def clear_cache() -> None:
    """Forget cached settings (tests that recreate workspaces with the same ids)."""
    _cache.clear()
