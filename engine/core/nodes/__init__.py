"""The node registry: one module per node type, one parse path, one dispatch.

A node type is one module (``engine/core/nodes/<type>.py``) with its schema, executor(s) and a ``SPEC``
(``NodeSpec``), plus its strings in the catalog (``workbench/base/i18n.py``); docs/nodes.md walks through
adding one. The validator, the runtime, the canvas, the editor's forms and the test chat all read ``REGISTRY``,
so nothing else changes. ``register`` and ``unregister`` also work at run time (a test adds a throw-away type and
takes it away again): parsing reads the registry as it is, never a union frozen at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import PlainValidator, SerializeAsAny, TypeAdapter, ValidationInfo
from pydantic_core import PydanticCustomError

from engine.core.nodes import (
    ab_split,
    add_tag,
    ai_reply,
    condition,
    delay,
    end,
    go_to_funnel,
    notify_human,
    odoo,
    remove_tag,
    route,
    send_choices,
    send_message,
    set_field,
    trigger,
    wait_reply,
    webhook,
)
from engine.core.nodes.base import ExecutionContext, NodeBase, NodeResult, NodeSpec
from workbench.base.i18n import t

NODE_MODULES = (trigger, send_message, send_choices, wait_reply, ai_reply, condition, ab_split, delay, add_tag,
                remove_tag, set_field, notify_human, webhook, odoo, go_to_funnel, route, end)

REGISTRY: dict[str, NodeSpec] = {}
"""type -> NodeSpec, in palette order."""

PLANNED_TYPES: tuple[str, ...] = ()
"""Types the product will have but this version cannot run yet: reported as "not available", not "unknown"."""


def register(spec: NodeSpec) -> None:
    """Add a node type; ``ValueError`` when its type is taken."""
    if spec.type in REGISTRY:
        raise ValueError(f"node type {spec.type!r} is already registered")
    REGISTRY[spec.type] = spec


def unregister(node_type: str) -> None:
    """Remove a node type (drafts that use it then report it as unknown)."""
    del REGISTRY[node_type]


for _module in NODE_MODULES:
    register(_module.SPEC)


def _parse(raw: Any, info: ValidationInfo) -> NodeBase:
    """Validate a raw node with the schema its ``type`` names in the registry as it is now (passing on the
    validation context, e.g. ``base.PUBLISHED``)."""
    if isinstance(raw, NodeBase):
        return raw
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    spec = REGISTRY.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise PydanticCustomError("node_type_unknown", t("definition.unknown_node_type"), {"type": str(kind)})
    return spec.schema.model_validate(raw, context=info.context)


AnyNode = SerializeAsAny[Annotated[NodeBase, PlainValidator(_parse)]]
"""Any registered node: validated by its type's schema, serialized with all of its fields."""
NODE_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyNode)


def spec_for(node: NodeBase | str) -> NodeSpec:
    """The registry entry of a node (or of a type name); ``KeyError`` for unknown types."""
    return REGISTRY[node if isinstance(node, str) else node.type]  # type: ignore[attr-defined]


def parse_node(raw: Any) -> NodeBase:
    """Validate one raw node dict into its schema; raises ``pydantic.ValidationError``."""
    return NODE_ADAPTER.validate_python(raw)


def outputs_of(node: NodeBase) -> list[str]:
    """Every edge label ``node`` may produce (e.g. ``["true", "false"]``)."""
    return spec_for(node).outputs(node.data.model_dump())  # type: ignore[attr-defined]


def required_outputs_of(node: NodeBase) -> list[str]:
    """The outputs that must have an edge before the funnel can be published."""
    return spec_for(node).required_outputs(node.data.model_dump())  # type: ignore[attr-defined]


def node_waits(node: NodeBase) -> bool:
    """Whether executing ``node`` suspends the run."""
    return spec_for(node).waits(node.data.model_dump())  # type: ignore[attr-defined]


def execute_node(node: NodeBase, ctx: ExecutionContext) -> NodeResult:
    """Run ``node``'s executor."""
    return spec_for(node).execute(node, ctx)


def resume_node(node: NodeBase, ctx: ExecutionContext, reply_text: str) -> NodeResult | None:
    """Feed a reply to a waiting node; None when the node does not take replies (e.g. a delay)."""
    spec = spec_for(node)
    return spec.resume(node, ctx, reply_text) if spec.resume else None


def result_node(node: NodeBase, ctx: ExecutionContext, result: Mapping[str, Any]) -> NodeResult:
    """Hand an outside call's result to the node that made it; a node without ``on_result`` fails the run."""
    spec = spec_for(node)
    if spec.on_result is None:
        return NodeResult(error=t("run.result_without_call"))
    return spec.on_result(node, ctx, result)


def timeout_node(node: NodeBase, ctx: ExecutionContext) -> NodeResult:
    """The node's wait deadline passed. Nodes without a deadline handler simply end the run."""
    spec = spec_for(node)
    if spec.on_timeout is None:
        return NodeResult(log=(t("run.timeout_without_wait"),))
    return spec.on_timeout(node, ctx)


__all__ = ["NODE_ADAPTER", "NODE_MODULES", "PLANNED_TYPES", "REGISTRY", "AnyNode", "execute_node", "node_waits",
           "outputs_of", "parse_node", "register", "required_outputs_of", "result_node", "resume_node", "spec_for",
           "timeout_node", "unregister"]
