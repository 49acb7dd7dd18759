"""Funnel goals (Teste A/B e metas): what counts as converting, and who converts, by A/B branch and entry link.

A funnel's goal is a step reached (``step``: a node id of the funnel) or a tag added to the contact (``tag``)
within ``days`` days of the contact **entering** the funnel (its first run of it). Conversion is counted per
contact: of the contacts who entered, how many reached the goal in time. ``goal_report`` splits them by the
Teste A/B branch they were first given in this funnel and by the entry link that brought them.

Whether a difference between groups means anything is a two-proportion z-test between the best and the
runner-up group (``compare``). The Funis cards say *ainda não dá para concluir* when either group has fewer than
``MIN_GROUP_CONTACTS`` contacts, fewer than ``MIN_EXPECTED`` expected conversions or non-conversions (the normal
approximation would not hold), or the two-sided p-value is ``SIGNIFICANCE`` or more.

Admins and supervisors set goals and read reports; the work is bounded by ``MAX_CONTACTS`` entries (the newest).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from workbench.base.errors import InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    EntryLink,
    EntryLinkContact,
    Funnel,
    FunnelEvent,
    FunnelRun,
    is_row_id,
)

GOAL_KINDS = ("step", "tag")
MAX_DAYS = 365
MAX_CONTACTS = 20_000
"""Newest entries a report reads."""
MIN_GROUP_CONTACTS = 30
"""Below this many contacts in either compared group, no conclusion is drawn."""
MIN_EXPECTED = 5
"""Each compared group needs this many expected conversions and non-conversions (the z-test's approximation)."""
SIGNIFICANCE = 0.05
"""Two-sided p-value under which a difference is called real."""


@dataclass(frozen=True)
class Entry:
    """One contact in a funnel: when it entered, its A/B branch and entry link (if any), when it hit the goal."""

    contact_id: int
    entered_at: datetime
    branch: str | None = None
    link: str | None = None
    reached_at: datetime | None = None


@dataclass(frozen=True)
class Group:
    """Contacts of one branch or link: how many, how many converted, the rate (0–1)."""

    label: str
    contacts: int
    converted: int

    @property
    def rate(self) -> float:
        """Share converted; 0 for an empty group."""
        return self.converted / self.contacts if self.contacts else 0.0


@dataclass(frozen=True)
class Verdict:
    """The comparison of the best group with the runner-up: ``conclusive`` (p-value under ``SIGNIFICANCE``) or
    not, with the p-value when it could be computed and ``reason`` (``too_few``, ``not_significant``, ``one_group``)
    when not."""

    conclusive: bool
    best: str | None = None
    runner_up: str | None = None
    p_value: float | None = None
    reason: str | None = None


# -- pure --------------------------------------------------------------------------------------------------------

def converted(entry: Entry, days: int) -> bool:
    """Whether the contact reached the goal between entering and ``days`` days later."""
    return entry.reached_at is not None and entry.entered_at <= entry.reached_at <= entry.entered_at + \
        timedelta(days=days)


def groups(entries: Iterable[Entry], days: int, by: str) -> list[Group]:
    """Entries grouped by ``branch`` or ``link`` (entries without one left out), in label order."""
    counts: dict[str, list[int]] = {}
    for entry in entries:
        label = getattr(entry, by)
        if label is None:
            continue
        pair = counts.setdefault(label, [0, 0])
        pair[0] += 1
        pair[1] += converted(entry, days)
    return [Group(label, n, k) for label, (n, k) in sorted(counts.items())]


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value of a two-proportion z-test (pooled); None when it cannot be computed (an empty group, or
    every contact converting or none)."""
    if not n1 or not n2:
        return None
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def compare(found: list[Group]) -> Verdict:
    """Is the best group really better than the runner-up? (see the module's thresholds)."""
    ranked = sorted((g for g in found if g.contacts), key=lambda g: (-g.rate, -g.contacts, g.label))
    if len(ranked) < 2:
        return Verdict(False, reason="one_group")
    best, second = ranked[0], ranked[1]
    p_value = two_proportion_p(best.converted, best.contacts, second.converted, second.contacts)
    pooled = (best.converted + second.converted) / (best.contacts + second.contacts)
    small = min(best.contacts, second.contacts) < MIN_GROUP_CONTACTS or any(
        n * pooled < MIN_EXPECTED or n * (1 - pooled) < MIN_EXPECTED for n in (best.contacts, second.contacts))
    if small:
        return Verdict(False, best.label, second.label, p_value, "too_few")
    if p_value is None or p_value >= SIGNIFICANCE:
        return Verdict(False, best.label, second.label, p_value, "not_significant")
    return Verdict(True, best.label, second.label, p_value)


# -- the goal ------------------------------------------------------------------------------------------------------

def check_goal(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A goal as stored, or None to clear it. ``InvalidInput`` (pt-BR) for a kind, target or day count that does
    not fit."""
    if not raw or not raw.get("kind"):
        return None
    kind, days = raw.get("kind"), raw.get("days")
    if kind not in GOAL_KINDS:
        raise InvalidInput("goal kind", key="error.goal.kind")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput("goal days", key="error.goal.days", max=MAX_DAYS)
    target = raw.get("node_id" if kind == "step" else "tag")
    target = target.strip() if isinstance(target, str) else ""
    if not target or len(target) > 80:
        raise InvalidInput("goal target", key=f"error.goal.{kind}")
    return {"kind": kind, "node_id" if kind == "step" else "tag": target, "days": days}


def _own(session: Any, actor: Actor, funnel_id: Any) -> Funnel:
    funnel = session.scalars(select(Funnel).where(Funnel.id == funnel_id, Funnel.workspace_id == actor.workspace_id)
                             ).first() if is_row_id(funnel_id) else None
    if funnel is None:
        raise NotFound("funnel", key="error.funnel_not_found")
    return funnel


def set_goal(actor: Actor, funnel_id: int, goal: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Admins and supervisors set (or clear, with None) a funnel's goal; returns it as stored."""
    actor.require("admin", "supervisor")
    checked = check_goal(goal)
    with session_scope() as session:
        _own(session, actor, funnel_id).goal = checked
    return checked


@dataclass(frozen=True)
class Report:
    """A funnel's conversion to its goal: overall, by A/B branch and by entry link, each with its verdict."""

    goal: dict[str, Any]
    overall: Group
    branches: list[Group]
    branch_verdict: Verdict
    links: list[Group]
    link_verdict: Verdict


def build_report(goal: Mapping[str, Any], entries: list[Entry]) -> Report:
    """The report of hand-built or loaded entries (pure)."""
    days = int(goal["days"])
    branches, links = groups(entries, days, "branch"), groups(entries, days, "link")
    overall = Group("", len(entries), sum(converted(e, days) for e in entries))
    return Report(dict(goal), overall, branches, compare(branches), links, compare(links))


def goal_report(actor: Actor, funnel_id: int) -> Report | None:
    """The funnel's report, or None when it has no goal (admins and supervisors)."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        funnel = _own(session, actor, funnel_id)
        if not funnel.goal:
            return None
        return build_report(funnel.goal, _entries(session, funnel))


def _entries(session: Any, funnel: Funnel) -> list[Entry]:
    first_run = (select(FunnelRun.contact_id.label("contact_id"), func.min(FunnelRun.started_at).label("entered"))
                 .where(FunnelRun.funnel_id == funnel.id).group_by(FunnelRun.contact_id)
                 .order_by(func.min(FunnelRun.started_at).desc()).limit(MAX_CONTACTS).subquery())
    entered = dict(session.execute(select(first_run.c.contact_id, first_run.c.entered)).all())
    if not entered:
        return []
    branches: dict[int, str] = {}
    for contact_id, output in session.execute(
            select(FunnelRun.contact_id, FunnelEvent.output).join(FunnelRun, FunnelRun.id == FunnelEvent.run_id)
            .join(first_run, first_run.c.contact_id == FunnelRun.contact_id)
            .where(FunnelEvent.funnel_id == funnel.id, FunnelEvent.node_type == "ab_split",
                   FunnelEvent.output.is_not(None)).order_by(FunnelEvent.id)):
        branches.setdefault(contact_id, output.upper())  # the first branch the contact was given
    links = dict(session.execute(select(EntryLinkContact.contact_id, EntryLink.name)
                                 .join(EntryLink, EntryLink.id == EntryLinkContact.link_id)
                                 .join(first_run, first_run.c.contact_id == EntryLinkContact.contact_id)).all())
    goal = funnel.goal or {}
    # The first time the goal was met on or after entering (an earlier tag does not count).
    if goal.get("kind") == "step":
        reached = (select(FunnelRun.contact_id, func.min(FunnelEvent.created_at))
                   .join(FunnelRun, FunnelRun.id == FunnelEvent.run_id)
                   .join(first_run, first_run.c.contact_id == FunnelRun.contact_id)
                   .where(FunnelEvent.funnel_id == funnel.id, FunnelEvent.node_id == goal.get("node_id"),
                          FunnelEvent.status != "error", FunnelEvent.created_at >= first_run.c.entered)
                   .group_by(FunnelRun.contact_id))
    else:
        reached = (select(ActivityEvent.subject_id, func.min(ActivityEvent.created_at))
                   .join(first_run, first_run.c.contact_id == ActivityEvent.subject_id)
                   .where(ActivityEvent.workspace_id == funnel.workspace_id, ActivityEvent.kind == "tag_added",
                          ActivityEvent.subject_type == "contact", ActivityEvent.created_at >= first_run.c.entered,
                          func.lower(ActivityEvent.data["tag"].astext) == str(goal.get("tag", "")).lower())
                   .group_by(ActivityEvent.subject_id))
    reached_at = dict(session.execute(reached).all())
    return [Entry(c, at, branches.get(c), links.get(c), reached_at.get(c)) for c, at in entered.items()]
