"""Per-workspace settings stored as JSON rows (``settings`` table), validated by pydantic models."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from workbench.auth import Actor
from workbench.db import session_scope
from workbench.models import Setting


class DefaultReply(BaseModel):
    """The reply the bot sends when nothing else answers a contact's message."""

    enabled: bool = False
    mode: Literal["every", "once_24h"] = "once_24h"
    text: str = Field("Olá! Recebemos sua mensagem e já vamos responder.", max_length=4096)


SCHEMAS: dict[str, type[BaseModel]] = {"default_reply": DefaultReply}
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
    model = SCHEMAS[key].model_validate(value if isinstance(value, dict) else value.model_dump())
    with session_scope() as session:
        stmt = pg_insert(Setting).values(workspace_id=actor.workspace_id, key=key, value=model.model_dump())
        session.execute(stmt.on_conflict_do_update(index_elements=[Setting.workspace_id, Setting.key],
                                                   set_={"value": stmt.excluded.value}))
    _cache.pop((actor.workspace_id, key), None)
    return model


def clear_cache() -> None:
    """Forget cached settings (tests that recreate workspaces with the same ids)."""
    _cache.clear()
