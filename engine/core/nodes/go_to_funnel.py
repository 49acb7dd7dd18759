"""Go to funnel: end this run and start another funnel for the conversation.

It has no outputs: one conversation walks one funnel at a time, so "continue here afterwards" would mean
two live runs. The runtime completes this run, then applies ``StartFunnel``.
"""

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
    StartFunnel,
    no_outputs,
)
from workbench.base.i18n import t


class GoToFunnelData(NodeData):
    """``funnel_id``: the funnel to start (its published version)."""

    funnel_id: int = Field(ge=1)


class GoToFunnelNode(NodeBase):
    """Schema of a ``go_to_funnel`` node."""

    type: Literal["go_to_funnel"]
    data: GoToFunnelData


def execute(node: GoToFunnelNode, ctx: ExecutionContext) -> NodeResult:
    """End here and ask for the other funnel."""
    return NodeResult(actions=(StartFunnel(node.data.funnel_id),), data={"funnel_id": node.data.funnel_id})


def summary(data: Config) -> str:
    """The funnel's number."""
    return t("node.go_to_funnel.summary", funnel_id=data.get("funnel_id") or "")


# No outputs: the run ends here.
SPEC = NodeSpec(type="go_to_funnel", schema=GoToFunnelNode, execute=execute, outputs=no_outputs, summary=summary,
                hints={"funnel_id": FieldHint(source="funnels")})
