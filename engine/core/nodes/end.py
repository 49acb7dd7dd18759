"""End: finish the run explicitly (a node with no outgoing edge also ends it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.core.nodes.base import ExecutionContext, NodeBase, NodeData, NodeResult, NodeSpec, no_outputs
from workbench.base.i18n import t


class EndNode(NodeBase):
    """Schema of an ``end`` node (no configuration)."""

    type: Literal["end"]
    data: NodeData = Field(default_factory=NodeData)


def execute(node: EndNode, ctx: ExecutionContext) -> NodeResult:
    """Finish the run."""
    return NodeResult(output=None, log=(t("run.end"),))


SPEC = NodeSpec(type="end", schema=EndNode, execute=execute, outputs=no_outputs)
