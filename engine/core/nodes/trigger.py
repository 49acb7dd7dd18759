"""Trigger: the start of a funnel (first message, keyword, any message, tag added, manual start, entry link).

The trigger's configuration is read *before* a run exists, by ``engine.core.matching.pick_trigger``; executing
it only moves the new run on to ``next``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    raw_list,
    regex_refusal,
)
from workbench.base.i18n import t

TriggerKind = Literal["first_message", "keyword", "any_message", "tag_added", "manual", "entry_link"]


class TriggerData(NodeData):
    """When the funnel starts.

    Attributes:
        kind: ``first_message`` (a contact's first message ever), ``keyword``, ``any_message``,
            ``tag_added`` or ``manual`` (an agent starts it).
        mode: keyword matching: ``contains`` (whole words), ``exact`` or ``regex``; always case- and
            accent-insensitive.
        words: the keywords (or patterns in ``regex`` mode); any one matching is enough.
        tag: the tag for ``tag_added``.
        priority: higher wins when several funnels' triggers match.
        restart_running: may interrupt a conversation's live run (otherwise the message goes to that run).
        instance_ids: only these WhatsApp numbers; None or empty = all.
        entry_link_ids: for ``entry_link`` ("entrou pelo link"): only these entry links; None or empty = any.
    """

    kind: TriggerKind = "keyword"
    mode: Literal["contains", "exact", "regex"] = "contains"
    words: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(default_factory=list, max_length=50)
    tag: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    priority: int = Field(default=0, ge=-1000, le=1000)
    restart_running: bool = False
    instance_ids: list[int] | None = None
    entry_link_ids: list[int] | None = None

    @model_validator(mode="after")
    def _check_kind(self, info: ValidationInfo) -> TriggerData:
        if self.kind == "keyword":
            self.words = [w.strip() for w in self.words if w.strip()]
            if not self.words:
                raise PydanticCustomError("keywords_missing", t("node.trigger.error.keywords_missing"))
            if self.mode == "regex":
                for word in self.words:
                    problem = regex_refusal(word, info)
                    if problem:
                        raise PydanticCustomError("regex_invalid", t("node.trigger.error.regex_invalid"),
                                                  {"word": word, "problem": problem})
        if self.kind == "tag_added" and not (self.tag and self.tag.strip()):
            raise PydanticCustomError("tag_missing", t("node.trigger.error.tag_missing"))
        return self


class TriggerNode(NodeBase):
    """Schema of a ``trigger`` node."""

    type: Literal["trigger"]
    data: TriggerData = Field(default_factory=TriggerData)


def execute(node: TriggerNode, ctx: ExecutionContext) -> NodeResult:
    """Start the run: nothing to do but move on."""
    return NodeResult(output="next", data={"kind": node.data.kind})


def summary(data: Config) -> str:
    """The keywords, the tag, or how the funnel starts."""
    kind = data.get("kind", "keyword")
    if kind == "keyword":
        return t("node.trigger.summary.keyword", words=", ".join(map(str, raw_list(data, "words"))))
    if kind == "tag_added":
        return t("node.trigger.summary.tag_added", tag=data.get("tag") or "")
    return SPEC.choice_label("kind", kind) if isinstance(kind, str) else ""


SPEC = NodeSpec(type="trigger", schema=TriggerNode, execute=execute, required_outputs=lambda data: ["next"],
                is_start=True, summary=summary,
                default_data=lambda: {"kind": "keyword", "mode": "contains", "words": []},
                hints={"instance_ids": FieldHint(source="numbers"), "entry_link_ids": FieldHint(source="entry_links")})
