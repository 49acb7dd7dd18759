"""Add tag: put a tag on the contact."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.core.nodes.base import (
    AddTag,
    Config,
    ExecutionContext,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    TemplateStr,
    raw_text,
    render_text,
)
from workbench.base.i18n import t


class TagData(NodeData):
    """``tag``: the tag name (template, so "{{vars.produto}}" works)."""

    tag: Annotated[TemplateStr, Field(min_length=1, max_length=80)]


class AddTagNode(NodeBase):
    """Schema of an ``add_tag`` node."""

    type: Literal["add_tag"]
    data: TagData


def tag_name(data: TagData, ctx: ExecutionContext) -> tuple[str, tuple[str, ...], str | None]:
    """Render the tag name: (name, log, error). An empty name is an error (a tag needs a name)."""
    rendered = render_text(data.tag, ctx, t("run.what.tag"))
    name = " ".join(rendered.text.split())[:80]
    if rendered.error:
        return "", rendered.log, rendered.error
    if not name:
        return "", rendered.log, t("node.add_tag.error.empty")
    return name, rendered.log, None


def execute(node: AddTagNode, ctx: ExecutionContext) -> NodeResult:
    """Ask the runtime to add the tag, then continue."""
    name, log, error = tag_name(node.data, ctx)
    if error:
        return NodeResult(log=log, error=error)
    return NodeResult(output="next", actions=(AddTag(name),), log=log)


def summary(data: Config) -> str:
    """The tag."""
    return raw_text(data, "tag")


SPEC = NodeSpec(type="add_tag", schema=AddTagNode, execute=execute, summary=summary, default_data=lambda: {"tag": ""})
