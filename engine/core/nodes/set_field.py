"""Set field: store a (template) value in a run variable or a contact field."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.core.nodes.base import (
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    TargetStr,
    TemplateStr,
    raw_text,
    render_text,
    store_value,
)
from workbench.base.i18n import t


class SetFieldData(NodeData):
    """``target``: ``vars.X``, ``contact.name`` or ``contact.custom_data.X``; ``value``: a template."""

    target: TargetStr
    value: TemplateStr = Field(default="", max_length=4_000)


class SetFieldNode(NodeBase):
    """Schema of a ``set_field`` node."""

    type: Literal["set_field"]
    data: SetFieldData


def execute(node: SetFieldNode, ctx: ExecutionContext) -> NodeResult:
    """Render the value and store it; an empty value clears the field."""
    rendered = render_text(node.data.value, ctx, t("run.what.value"))
    if rendered.error:
        return NodeResult(log=rendered.log, error=rendered.error)
    return NodeResult(output="next", actions=(store_value(node.data.target, rendered.text),), log=rendered.log)


def summary(data: Config) -> str:
    """``target = value``."""
    return f"{raw_text(data, 'target')} = {raw_text(data, 'value')}"


SPEC = NodeSpec(type="set_field", schema=SetFieldNode, execute=execute, summary=summary,
                default_data=lambda: {"target": "", "value": ""},
                hints={"target": FieldHint(kind="field_target", source="contact_fields")})
