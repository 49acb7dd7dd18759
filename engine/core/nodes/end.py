"""End: finish the run explicitly (a node with no outgoing edge also ends it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.core.nodes.base import ExecutionContext, NodeBase, NodeData, NodeResult, NodeSpec


class EndNode(NodeBase):
    """Schema of an ``end`` node (no configuration)."""

    type: Literal["end"]
    data: NodeData = Field(default_factory=NodeData)


def execute(node: EndNode, ctx: ExecutionContext) -> NodeResult:
    """Finish the run."""
    return NodeResult(output=None, log=("fim do funil",))


def no_outputs(node: EndNode) -> list[str]:
    """None."""
    return []


SPEC = NodeSpec(type="end", label="Fim", schema=EndNode, execute=execute, outputs=no_outputs)
