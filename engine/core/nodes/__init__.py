"""The node registry: one module per node type, one discriminated union, one dispatch.

To add a node type (``ai_reply``, ``webhook`` and ``odoo`` are next): write ``engine/nodes/<type>.py`` with
its schema (``type: Literal["<type>"]``, configuration in ``data``), ``execute`` (and ``resume`` /
``on_timeout`` if it waits) and a ``SPEC``; add the module to ``NODE_MODULES`` and drop its name from
``PLANNED_TYPES``. Integrations that can fail (webhook, Odoo) should expose ``success``/``failure`` outputs
and turn errors into the ``failure`` branch rather than a run error. Nothing else needs to change: the
union, the validator and the runtime all read this registry.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from engine.core.nodes import (
    add_tag,
    condition,
    delay,
    end,
    go_to_funnel,
    notify_human,
    remove_tag,
    route,
    send_choices,
    send_message,
    set_field,
    trigger,
    wait_reply,
)
from engine.core.nodes.base import ExecutionContext, NodeBase, NodeResult, NodeSpec

NODE_MODULES = (trigger, send_message, send_choices, wait_reply, condition, delay, add_tag, remove_tag, set_field,
                notify_human, go_to_funnel, route, end)

REGISTRY: dict[str, NodeSpec] = {module.SPEC.type: module.SPEC for module in NODE_MODULES}
"""type -> NodeSpec (schema, executors, outputs)."""

PLANNED_TYPES: dict[str, str] = {
    "ai_reply": "Resposta com IA",
    "webhook": "Webhook",
    "odoo": "Enviar para o Odoo",
}
"""Types the product will have but this version cannot run yet: reported as "not available", not "unknown"."""

# The one discriminated union of every node schema, built from the registry so it cannot drift from it.
AnyNode = Annotated[reduce(operator.or_, (spec.schema for spec in REGISTRY.values())), Field(discriminator="type")]
NODE_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyNode)


def spec_for(node: NodeBase | str) -> NodeSpec:
    """The registry entry of a node (or of a type name); ``KeyError`` for unknown types."""
    return REGISTRY[node if isinstance(node, str) else node.type]  # type: ignore[attr-defined]


def parse_node(raw: Any) -> NodeBase:
    """Validate one raw node dict into its schema; raises ``pydantic.ValidationError``."""
    return NODE_ADAPTER.validate_python(raw)


def outputs_of(node: NodeBase) -> list[str]:
    """Every edge label ``node`` may produce (e.g. ``["true", "false"]``)."""
    return spec_for(node).outputs(node)


def required_outputs_of(node: NodeBase) -> list[str]:
    """The outputs that must have an edge before the funnel can be published."""
    return spec_for(node).required_outputs(node)


def node_waits(node: NodeBase) -> bool:
    """Whether executing ``node`` suspends the run."""
    return spec_for(node).waits(node)


def execute_node(node: NodeBase, ctx: ExecutionContext) -> NodeResult:
    """Run ``node``'s executor."""
    return spec_for(node).execute(node, ctx)


def resume_node(node: NodeBase, ctx: ExecutionContext, reply_text: str) -> NodeResult | None:
    """Feed a reply to a waiting node; None when the node does not take replies (e.g. a delay)."""
    spec = spec_for(node)
    return spec.resume(node, ctx, reply_text) if spec.resume else None


def timeout_node(node: NodeBase, ctx: ExecutionContext) -> NodeResult:
    """The node's wait deadline passed. Nodes without a deadline handler simply end the run."""
    spec = spec_for(node)
    if spec.on_timeout is None:
        return NodeResult(log=("prazo vencido num nó sem espera; fim do funil",))
    return spec.on_timeout(node, ctx)


__all__ = ["NODE_ADAPTER", "NODE_MODULES", "PLANNED_TYPES", "REGISTRY", "AnyNode", "execute_node", "node_waits",
           "outputs_of", "parse_node", "required_outputs_of", "resume_node", "spec_for", "timeout_node"]
