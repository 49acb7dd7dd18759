"""Go to funnel: end this run and start another funnel for the conversation.

It has no outputs: one conversation walks one funnel at a time, so "continue here afterwards" would mean
two live runs. The runtime completes this run, then applies ``StartFunnel``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.core.nodes.base import ExecutionContext, NodeBase, NodeData, NodeResult, NodeSpec, StartFunnel


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


def no_outputs(node: GoToFunnelNode) -> list[str]:
    """None: the run ends here."""
    return []


SPEC = NodeSpec(type="go_to_funnel", label="Ir para funil", schema=GoToFunnelNode, execute=execute,
                outputs=no_outputs)
