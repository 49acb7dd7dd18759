"""Enviar para Odoo: create (or update) the contact's lead in the workspace's Odoo CRM, then ``sucesso`` or ``falha``.

Pure like every node: ``execute`` renders the mapping (lead title, contact name, e-mail, phone, company,
description — templates over the contact, the funnel's variables and ``{{history}}``, the conversation's recent
messages) into a ``CallOutside("odoo", ...)`` with a call wait. Empty contact mappings take the contact's own
values in the worker. The executor (``workbench/services/odoo.py``) finds the contact's open lead (stored id,
phone, e-mail) and adds a note to it, or creates one, never two for one push; Odoo down or slow is retried for
about 15 minutes before the step takes ``falha``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from engine.core.nodes.base import (
    CallOutside,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    TargetStr,
    TemplateStr,
    Wait,
    raw_text,
    render_text,
    store_value,
)
from workbench.base.i18n import t

OUTPUTS = ["sucesso", "falha"]
WAIT_LIMIT_S = 40 * 60
"""The step's overall limit: the executor's ~15 minutes of retries, each try's calls, and room in the queue."""
_FIELDS = ("title", "contact_name", "email", "phone", "company", "description", "expected_revenue")


class OdooData(NodeData):
    """The lead's mapping. Empty contact fields take the contact's own name, e-mail, phone and company.

    Attributes:
        title, contact_name, email, phone, company, description: templates.
        tags: crm.tag names added to the lead (created in Odoo when missing), besides the connection's defaults.
        team_id, user_id: Odoo's ids of the sales team and salesperson (empty: the connection's defaults).
        expected_revenue: a template giving a number (``1.500,00`` or ``1500.00``); empty = none.
        save_lead_to: where to store the lead's id (optional).
        include_ai_summary: append the contact's stored *Resumo da IA* to the description (the executor reads it
            when the push runs, so the step needs no database).
    """

    title: Annotated[TemplateStr, Field(min_length=1, max_length=500)]
    contact_name: Annotated[TemplateStr, Field(max_length=500)] = ""
    email: Annotated[TemplateStr, Field(max_length=500)] = ""
    phone: Annotated[TemplateStr, Field(max_length=500)] = ""
    company: Annotated[TemplateStr, Field(max_length=500)] = ""
    description: Annotated[TemplateStr, Field(max_length=4_000)] = ""
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=20)] = \
        Field(default_factory=list)
    team_id: int | None = Field(None, ge=1)
    user_id: int | None = Field(None, ge=1)
    expected_revenue: Annotated[TemplateStr, Field(max_length=200)] = ""
    save_lead_to: TargetStr | None = None
    include_ai_summary: bool = False


class OdooNode(NodeBase):
    """Schema of an ``odoo`` node."""

    type: Literal["odoo"]
    data: OdooData


def parse_amount(text: str) -> float | None:
    """``"1.500,50"``, ``"1500.50"``, ``"R$ 1.500"`` -> a number; None when there is none."""
    cleaned = re.sub(r"[^\d,.-]", "", text or "")
    if not cleaned:
        return None
    if "," in cleaned:  # Brazilian: dots group thousands, the comma is the decimal mark
        cleaned = cleaned.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"-?\d{1,3}(\.\d{3})+", cleaned):  # "1.500", "1.000.000": dots group thousands
        cleaned = cleaned.replace(".", "")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e15 else None


def execute(node: OdooNode, ctx: ExecutionContext) -> NodeResult:
    """Render the mapping and hand the push to the calls pool."""
    cfg = node.data
    lead: dict[str, Any] = {}
    logs: list[str] = []
    for name in _FIELDS:
        rendered = render_text(getattr(cfg, name), ctx, t(f"node.odoo.field.{name}"))
        logs.extend(rendered.log)
        if rendered.error:
            return NodeResult(output="falha", log=(*logs, rendered.error), data={"reason": "template"})
        lead[name] = rendered.text.strip()
    lead["expected_revenue"] = parse_amount(lead["expected_revenue"])
    lead["tags"] = list(cfg.tags)
    lead["team_id"], lead["user_id"] = cfg.team_id, cfg.user_id
    lead["include_ai_summary"] = cfg.include_ai_summary
    return NodeResult(actions=(CallOutside("odoo", lead),), log=tuple(logs),
                      wait=Wait(kind="call", timeout_s=WAIT_LIMIT_S))


def resume(node: OdooNode, ctx: ExecutionContext, reply_text: str) -> NodeResult:
    """A message of the contact while the push runs: it stays in the conversation; keep waiting for the push."""
    return NodeResult(wait=Wait(kind="call", timeout_s=WAIT_LIMIT_S))


def on_result(node: OdooNode, ctx: ExecutionContext, result: Mapping[str, Any]) -> NodeResult:
    """``sucesso`` with the lead's id (stored when asked), else ``falha`` with the reason."""
    if result.get("ok") is not True:
        reason = str(result.get("error") or "falha")[:200]
        return NodeResult(output="falha", data={"reason": reason},
                          log=(t("node.odoo.log.failed", reason=t(f"odoo.problem.{reason}")
                                 if reason in PROBLEMS else reason),))
    lead_id = result.get("lead_id")
    actions = (store_value(node.data.save_lead_to, lead_id),) if node.data.save_lead_to else ()
    return NodeResult(output="sucesso", actions=actions, data={"lead_id": lead_id, "action": result.get("action")})


PROBLEMS = ("not_configured", "unreachable", "timeout", "database", "auth", "no_crm", "access", "fault", "protocol",
            "contact")
"""Failure reasons the executor reports, each with a catalog line ``odoo.problem.<reason>``."""


def on_timeout(node: OdooNode, ctx: ExecutionContext) -> NodeResult:
    """The push did not finish within the step's limit."""
    return NodeResult(output="falha", data={"reason": "timeout"}, log=(t("node.odoo.log.timeout"),))


def both(data: Config) -> list[str]:
    """``sucesso`` and ``falha``."""
    return list(OUTPUTS)


def summary(data: Config) -> str:
    """The lead's title template."""
    return raw_text(data, "title")


SPEC = NodeSpec(type="odoo", schema=OdooNode, execute=execute, resume=resume, on_result=on_result,
                on_timeout=on_timeout, outputs=both, required_outputs=lambda data: ["sucesso"],
                waits=lambda data: True, summary=summary,
                default_data=lambda: {"title": "{{contact.name}} — WhatsApp", "description": "{{history}}"},
                hints={"description": FieldHint(kind="long_text"), "save_lead_to": FieldHint(kind="field_target",
                                                                                           source="contact_fields")})
