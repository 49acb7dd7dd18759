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


class AnalyticsSettings(BaseModel):
    """What the reports count (Painel, Equipe): the tag that marks a qualified lead, the first-response target,
    and the workspace's business hours (the zone is the workspace's)."""

    qualified_tag: str = Field("ia_qualificado", min_length=1, max_length=80)
    sla_minutes: int = Field(60, ge=1, le=60 * 24 * 7)
    hours: BusinessHours = Field(default_factory=BusinessHours)


SCHEMAS: dict[str, type[BaseModel]] = {"default_reply": DefaultReply, "bot": BotSettings,
                                       "analytics": AnalyticsSettings}
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
    """Admins and supervisors change a setting; the value is validated before it is stored."""
    actor.require("admin", "supervisor")
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
