"""Remove tag: take a tag off the contact."""

from __future__ import annotations

from typing import Literal

from engine.core.nodes.add_tag import TagData, summary, tag_name
from engine.core.nodes.base import ExecutionContext, NodeBase, NodeResult, NodeSpec, RemoveTag


class RemoveTagNode(NodeBase):
    """Schema of a ``remove_tag`` node (same configuration as ``add_tag``)."""

    type: Literal["remove_tag"]
    data: TagData


def execute(node: RemoveTagNode, ctx: ExecutionContext) -> NodeResult:
    """Ask the runtime to remove the tag, then continue."""
    name, log, error = tag_name(node.data, ctx)
    if error:
        return NodeResult(log=log, error=error)
    return NodeResult(output="next", actions=(RemoveTag(name),), log=log)


SPEC = NodeSpec(type="remove_tag", schema=RemoveTagNode, execute=execute, summary=summary,
                default_data=lambda: {"tag": ""})
