"""Notify human: send a panel notification to a team or a user (the conversation stays with the bot)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    Notify,
    TemplateStr,
    raw_text,
    render_text,
)
from workbench.base.i18n import t


class NotifyHumanData(NodeData):
    """Who to notify and what to say.

    Attributes:
        team_id: a team; or ``team_name`` when the definition was written without ids (imported, examples);
            the runtime resolves the name within the workspace.
        user_id: a user.
        message: the notification text (template).
        email: also e-mail the user, or every member of the team (Configurações › E-mail); a failed e-mail never
            stops the funnel.
    """

    team_id: int | None = None
    team_name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    user_id: int | None = None
    message: Annotated[TemplateStr, Field(min_length=1, max_length=4_000)]
    email: bool = False

    @model_validator(mode="after")
    def _check_recipient(self) -> NotifyHumanData:
        if self.team_id is None and self.user_id is None and not self.team_name:
            raise PydanticCustomError("recipient_missing", t("node.notify_human.error.recipient_missing"))
        return self


class NotifyHumanNode(NodeBase):
    """Schema of a ``notify_human`` node."""

    type: Literal["notify_human"]
    data: NotifyHumanData


def execute(node: NotifyHumanNode, ctx: ExecutionContext) -> NodeResult:
    """Render the message and ask the runtime to notify, then continue."""
    cfg = node.data
    rendered = render_text(cfg.message, ctx, t("run.what.notification"))
    if rendered.error:
        return NodeResult(log=rendered.log, error=rendered.error)
    action = Notify(rendered.text, team_id=cfg.team_id, user_id=cfg.user_id, team_name=cfg.team_name,
                    email=cfg.email)
    return NodeResult(output="next", actions=(action,), log=rendered.log)


def summary(data: Config) -> str:
    """The notification text."""
    return raw_text(data, "message")


SPEC = NodeSpec(type="notify_human", schema=NotifyHumanNode, execute=execute, summary=summary,
                default_data=lambda: {"message": ""},
                hints={"team_id": FieldHint(source="teams"), "user_id": FieldHint(source="people"),
                       "message": FieldHint(kind="long_text")})
