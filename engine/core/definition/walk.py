"""A pure walk over a definition: run nodes from one node until the run waits, ends or fails.

The runtime (``workbench.services.runs``) and the editor's test chat (``engine.core.preview``) both move runs
with ``walk``; only what they do with the result differs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.core.definition.model import FunnelDefinition
from engine.core.nodes import execute_node, result_node, resume_node, timeout_node
from engine.core.nodes.base import Action, ExecutionContext, NodeResult, Wait
from workbench.base.i18n import t

MAX_STEPS = 200
"""Nodes one ``walk`` may execute before it stops the run (validation already refuses loops that never wait)."""


@dataclass(frozen=True)
class Step:
    """One node execution (one funnel event): the node, and what it decided."""

    node_id: str
    node_type: str
    result: NodeResult
    duration_ms: int = 0


@dataclass(frozen=True)
class Walk:
    """The outcome of ``walk``: what ran, where the run stands, and everything to apply.

    Attributes:
        steps: node executions in order (write one funnel event each).
        status: ``waiting`` (suspended on ``node_id``), ``completed``, ``failed``, or ``ignored`` (a reply
            reached a node that does not take replies, e.g. during a delay: nothing happened).
        node_id: the waiting node, or the last node executed.
        wait: the wait to store when ``waiting``.
        error: why the run failed.
        context: the context after all steps (``context.variables`` are the run's new variables).
    """

    steps: tuple[Step, ...]
    status: Literal["waiting", "completed", "failed", "ignored"]
    node_id: str | None
    context: ExecutionContext
    wait: Wait | None = None
    error: str | None = None

    @property
    def actions(self) -> list[Action]:
        """Every action of every step, in order: what the runtime applies in its transaction."""
        return [action for step in self.steps for action in step.result.actions]


def walk(defn: FunnelDefinition, ctx: ExecutionContext, node_id: str, *, reply: str | None = None,
         timed_out: bool = False, call_result: Mapping[str, Any] | None = None,
         max_steps: int = MAX_STEPS) -> Walk:
    """Move a run forward from ``node_id`` until it waits, ends or fails; pure.

    - default: execute ``node_id`` (a new run starts at the trigger's id), then follow outputs;
    - ``reply``: the run waits on ``node_id`` and the contact answered: the node's ``resume`` parses it
      (``ctx.attempts`` = the stored attempts; ``ctx.last_reply`` is set to the reply);
    - ``timed_out``: the wait deadline of ``node_id`` passed: the node's ``on_timeout``;
    - ``call_result``: an outside call the node made finished: the node's ``on_result`` gets its answer.

    Each next node sees the context updated by the previous results (variables, tags, contact fields).
    """
    node = defn.node(node_id)
    if node is None:
        return Walk((), "failed", node_id, ctx, error=t("definition.walk.no_node", node_id=node_id))
    started = time.perf_counter()
    if reply is not None:
        ctx = replace(ctx, last_reply=reply)
        result = resume_node(node, defn.context_for(node_id, ctx), reply)
        if result is None:
            return Walk((), "ignored", node_id, ctx)
    elif timed_out:
        result = timeout_node(node, defn.context_for(node_id, ctx))
    elif call_result is not None:
        result = result_node(node, defn.context_for(node_id, ctx), call_result)
    else:
        result = execute_node(node, defn.context_for(node_id, replace(ctx, attempts=0)))
    steps: list[Step] = []
    while True:
        elapsed = int((time.perf_counter() - started) * 1000)
        steps.append(Step(node.id, node.type, result, elapsed))  # type: ignore[attr-defined]
        if result.wait is not None and result.error is None:
            # Stay on this node: keep variables/tags the result set, carry attempts for the next reply.
            ctx = replace(ctx.with_result(result), attempts=result.wait.attempts)
            return Walk(tuple(steps), "waiting", node.id, ctx, wait=result.wait)
        ctx = ctx.with_result(result)
        if result.error is not None:
            return Walk(tuple(steps), "failed", node.id, ctx, error=result.error)
        next_id = defn.next_node_id(node.id, result.output)
        if next_id is None:
            return Walk(tuple(steps), "completed", node.id, ctx)
        if len(steps) >= max_steps:
            error = t("definition.walk.step_limit", max_steps=max_steps)
            return Walk(tuple(steps), "failed", node.id, ctx, error=error)
        node = defn.node(next_id)  # type: ignore[assignment]
        started = time.perf_counter()
        result = execute_node(node, defn.context_for(next_id, ctx))
