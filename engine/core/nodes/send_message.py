"""Send message: a text and/or a media item (image, audio, video, document), with typing simulation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    Action,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    SendMedia,
    SendText,
    TemplateStr,
    raw_text,
    render_text,
)
from workbench.base.i18n import t


class Media(NodeData):
    """A stored media item (``media`` table id) and its caption."""

    kind: Literal["image", "audio", "video", "document"]
    media_id: int | str
    caption: TemplateStr | None = None


class SendMessageData(NodeData):
    """A text (template), a media item, or both (the text goes first).

    Attributes:
        text: message text; every ``{{...}}`` is rendered.
        media: optional media item with caption.
        typing: show "digitando..." before sending.
    """

    text: TemplateStr | None = Field(default=None, max_length=20_000)
    media: Media | None = None
    typing: bool = True

    @model_validator(mode="after")
    def _check_content(self) -> SendMessageData:
        if not (self.text and self.text.strip()) and self.media is None:
            raise PydanticCustomError("content_missing", t("node.send_message.error.content_missing"))
        return self


class SendMessageNode(NodeBase):
    """Schema of a ``send_message`` node."""

    type: Literal["send_message"]
    data: SendMessageData


def execute(node: SendMessageNode, ctx: ExecutionContext) -> NodeResult:
    """Render the text/caption and ask the runtime to send them; an empty rendered text is skipped."""
    cfg = node.data
    actions: list[Action] = []
    log: list[str] = []
    text = render_text(cfg.text, ctx)
    log += text.log
    if text.error:
        return NodeResult(log=tuple(log), error=text.error)
    if text.text.strip():
        actions.append(SendText(text.text, typing=cfg.typing))
    elif cfg.text:
        log.append(t("node.send_message.log.empty_text"))
    if cfg.media is not None:
        caption = render_text(cfg.media.caption, ctx, t("run.what.caption"))
        log += caption.log
        if caption.error:
            return NodeResult(log=tuple(log), error=caption.error)
        actions.append(SendMedia(cfg.media.media_id, cfg.media.kind, caption.text or None, typing=cfg.typing))
    return NodeResult(output="next", actions=tuple(actions), log=tuple(log))


def summary(data: Config) -> str:
    """The text, or "Mídia" for a message without one."""
    text = raw_text(data, "text")
    return text if text or not data.get("media") else t("node.send_message.summary.media")


SPEC = NodeSpec(type="send_message", schema=SendMessageNode, execute=execute, summary=summary,
                default_data=lambda: {"text": ""},
                hints={"text": FieldHint(kind="long_text"), "media": FieldHint(kind="media", source="media")})
