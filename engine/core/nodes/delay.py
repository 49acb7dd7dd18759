"""Delay: wait a duration (plus random jitter, so the bot does not answer like a metronome), optionally
pushed into business hours. The run suspends with a timer; ``on_timeout`` continues to ``next``.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    MAX_WAIT_SECONDS,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    Wait,
)
from workbench.base.i18n import t

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class BusinessHours(NodeData):
    """When sending is allowed.

    Attributes:
        timezone: IANA zone; None uses the workspace's.
        days: allowed weekdays, 0 = Monday ... 6 = Sunday (Python's ``weekday()``).
        start: opening time "HH:MM" (inclusive).
        end: closing time "HH:MM" (exclusive); must be after ``start`` (no overnight windows).
    """

    timezone: str | None = None
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1, max_length=7)
    start: str = "09:00"
    end: str = "18:00"

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise PydanticCustomError("timezone_invalid", t("node.delay.error.timezone_invalid"),
                                          {"zone": value}) from None
        return value

    @field_validator("days")
    @classmethod
    def _check_days(cls, value: list[int]) -> list[int]:
        if any(not 0 <= d <= 6 for d in value):
            raise PydanticCustomError("days_invalid", t("node.delay.error.days_invalid"))
        return sorted(set(value))

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise PydanticCustomError("time_invalid", t("node.delay.error.time_invalid"), {"value": value})
        return value

    @model_validator(mode="after")
    def _check_window(self) -> BusinessHours:
        if self.end <= self.start:
            raise PydanticCustomError("window_invalid", t("node.delay.error.window_invalid"))
        return self


class DelayData(NodeData):
    """``seconds`` plus up to ``jitter_s`` random seconds, then business hours if set."""

    seconds: float = Field(default=0, ge=0, le=MAX_WAIT_SECONDS)
    jitter_s: float = Field(default=0, ge=0, le=3600)
    business_hours: BusinessHours | None = None


class DelayNode(NodeBase):
    """Schema of a ``delay`` node."""

    type: Literal["delay"]
    data: DelayData = Field(default_factory=DelayData)


def _parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def next_business_instant(instant: datetime, hours: BusinessHours, default_zone: str) -> datetime:
    """The first instant at or after ``instant`` inside the business hours (aware, in the hours' zone).

    Windows are built from local wall-clock times each day, so they follow daylight-saving changes.
    """
    zone = ZoneInfo(hours.timezone or default_zone)
    local = instant.astimezone(zone)
    start, end = _parse_hhmm(hours.start), _parse_hhmm(hours.end)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in hours.days:
            continue
        opens = datetime.combine(day, start, tzinfo=zone)
        closes = datetime.combine(day, end, tzinfo=zone)
        candidate = max(local, opens)
        if candidate < closes:
            return candidate
    # Unreachable with at least one allowed day (a full week always contains it); kept total.
    return local


def execute(node: DelayNode, ctx: ExecutionContext) -> NodeResult:
    """Compute when to continue; continue at once when that is now."""
    cfg = node.data
    jitter = ctx.rng.uniform(0, cfg.jitter_s) if cfg.jitter_s else 0.0
    resume_at = ctx.now + timedelta(seconds=cfg.seconds + jitter)
    if cfg.business_hours is not None:
        resume_at = next_business_instant(resume_at, cfg.business_hours, ctx.timezone)
    data = {"resume_at": resume_at.isoformat(), "jitter_s": round(jitter, 3)}
    if resume_at <= ctx.now:
        return NodeResult(output="next", data=data)
    return NodeResult(wait=Wait("timer", resume_at=resume_at), data=data)


def on_timeout(node: DelayNode, ctx: ExecutionContext) -> NodeResult:
    """The timer fired: continue."""
    return NodeResult(output="next")


def waits(data: Config) -> bool:
    """A delay breaks a loop only if it always waits at least a second."""
    seconds = data.get("seconds", 0)
    return isinstance(seconds, int | float) and seconds >= 1


def summary(data: Config) -> str:
    """The duration, in the largest whole unit ("2 h", "90 s")."""
    seconds = data.get("seconds", 0)
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "0 s"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


SPEC = NodeSpec(type="delay", schema=DelayNode, execute=execute, waits=waits, on_timeout=on_timeout, summary=summary,
                default_data=lambda: {"seconds": 60}, hints={"business_hours": FieldHint(kind="business_hours")})
