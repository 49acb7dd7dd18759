"""Route: hand the conversation to a team and/or agent, optionally pausing the bot.

The pause is for what comes *after* this funnel step: nodes chained right after a route (a confirmation
message) still run in the same pass; the runtime applies the pause to later messages and timers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import Config, ExecutionContext, FieldHint, NodeBase, NodeData, NodeResult, NodeSpec, Route
from workbench.base.i18n import t


class RouteData(NodeData):
    """Where the conversation goes.

    Attributes:
        team_id: the team; or ``team_name`` (resolved by the runtime within the workspace) for definitions
            written without ids.
        agent_id: a specific agent.
        pause_bot: stop funnel steps for this conversation.
        pause_minutes: resume the bot automatically after this long; None = until someone resumes it.
    """

    team_id: int | None = None
    team_name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    agent_id: int | None = None
    pause_bot: bool = True
    pause_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 30)

    @model_validator(mode="after")
    def _check_target(self) -> RouteData:
        if self.team_id is None and self.agent_id is None and not self.team_name:
            raise PydanticCustomError("route_target_missing", t("node.route.error.route_target_missing"))
        return self


class RouteNode(NodeBase):
    """Schema of a ``route`` node."""

    type: Literal["route"]
    data: RouteData


def execute(node: RouteNode, ctx: ExecutionContext) -> NodeResult:
    """Ask the runtime to assign (and pause), then continue."""
    cfg = node.data
    action = Route(team_id=cfg.team_id, agent_id=cfg.agent_id, team_name=cfg.team_name, pause_bot=cfg.pause_bot,
                   pause_minutes=cfg.pause_minutes)
    return NodeResult(output="next", actions=(action,))


def summary(data: Config) -> str:
    """Who the conversation goes to."""
    return t("node.route.summary", who=data.get("team_name") or data.get("team_id") or data.get("agent_id") or "")


SPEC = NodeSpec(type="route", schema=RouteNode, execute=execute, summary=summary,
                default_data=lambda: {"pause_bot": True},
                hints={"team_id": FieldHint(source="teams"), "agent_id": FieldHint(source="people")})
