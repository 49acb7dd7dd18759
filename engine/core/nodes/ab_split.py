"""Teste A/B: send each contact down one of two to five branches (``a`` … ``e``), at random by weight.

A contact is assigned once per run: the branch is kept in the run variable ``ASSIGNMENTS_VAR`` (node id ->
branch), so a loop back to the step takes the same branch. The runtime seeds that variable, when a run starts,
with the contact's earlier assignments in the same funnel version (read from the funnel events), so a contact
whose funnel restarts stays on its branch; a new version draws again. The test chat seeds it with the branch the
author picked. The draw uses ``ExecutionContext.rng``: the executor stays pure and a seeded rng reproduces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    Config,
    ExecutionContext,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    SetVariable,
    TargetStr,
    raw_list,
    store_value,
)
from workbench.base.i18n import t

BRANCH_KEYS = ("a", "b", "c", "d", "e")
"""Output labels, by position of the weight."""
MAX_WEIGHT = 1000
ASSIGNMENTS_VAR = "__ab"
"""Run variable holding ``{node_id: branch}``: the contact's assignments (kept, earlier, or picked in the chat)."""


class ABSplitData(NodeData):
    """``weights``: one per branch (A, B, … in order), 2 to 5, each 0–1000, not all zero; a branch's share is
    its weight over the sum. ``save_to``: where to note the branch taken (optional)."""

    weights: list[Annotated[int, Field(ge=0, le=MAX_WEIGHT)]] = Field(default_factory=lambda: [50, 50])
    save_to: TargetStr | None = None

    @model_validator(mode="after")
    def _check_weights(self) -> ABSplitData:
        if not 2 <= len(self.weights) <= len(BRANCH_KEYS):
            raise PydanticCustomError("branches_count", t("node.ab_split.error.branches_count"))
        if sum(self.weights) <= 0:
            raise PydanticCustomError("weights_zero", t("node.ab_split.error.weights_zero"))
        return self


class ABSplitNode(NodeBase):
    """Schema of an ``ab_split`` node."""

    type: Literal["ab_split"]
    data: ABSplitData = Field(default_factory=ABSplitData)


def branch_keys(count: int) -> list[str]:
    """The output labels of ``count`` branches (``a``, ``b``, …), at most five."""
    return list(BRANCH_KEYS[:max(0, min(count, len(BRANCH_KEYS)))])


def assignments(variables: Mapping[str, Any]) -> dict[str, str]:
    """The ``{node_id: branch}`` assignments held in run variables (anything malformed is ignored)."""
    raw = variables.get(ASSIGNMENTS_VAR)
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str) and v in BRANCH_KEYS}


def execute(node: ABSplitNode, ctx: ExecutionContext) -> NodeResult:
    """Keep the contact's branch when it has one for this step, else draw one by weight."""
    keys = branch_keys(len(node.data.weights))
    held = assignments(ctx.variables)
    branch = held.get(node.id)
    how = "kept"
    if branch not in keys:
        branch = ctx.rng.choices(keys, weights=node.data.weights)[0]
        how = "drawn"
    actions: list[Any] = [SetVariable(ASSIGNMENTS_VAR, {**held, node.id: branch})]
    if node.data.save_to:
        actions.append(store_value(node.data.save_to, branch.upper()))
    return NodeResult(output=branch, actions=tuple(actions), data={"branch": branch, "assigned": how})


def outputs(data: Config) -> list[str]:
    """One output per weight (two when the weights are unreadable)."""
    weights = raw_list(data, "weights")
    return branch_keys(len(weights)) if len(weights) >= 2 else ["a", "b"]


def summary(data: Config) -> str:
    """The split as shares, e.g. "A 50% · B 30% · C 20%"."""
    weights = raw_list(data, "weights")
    if not weights or not all(isinstance(w, int) and w >= 0 for w in weights) or sum(weights) <= 0:
        return ""
    total = sum(weights)
    return " · ".join(t("node.ab_split.summary.branch", branch=k.upper(), percent=round(100 * w / total))
                      for k, w in zip(BRANCH_KEYS, weights, strict=False))


SPEC = NodeSpec(type="ab_split", schema=ABSplitNode, execute=execute, outputs=outputs, required_outputs=outputs,
                summary=summary, default_data=lambda: {"weights": [50, 50]})
