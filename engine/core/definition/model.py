"""The parsed definition: nodes through the node registry, edges with resolved labels, navigation for the runtime."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from engine.core.matching import TriggerCandidate
from engine.core.nodes import AnyNode, outputs_of, spec_for
from engine.core.nodes.base import ExecutionContext, NodeBase

CANVAS_TYPES = ("default", "input", "output")
"""The React Flow node types streamlit-flow draws; the funnel type then travels in ``data.node_type``."""


class Edge(BaseModel):
    """A connection; ``label`` names the source node's output it carries."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=64)
    label: str = Field(default="", max_length=32)

    @model_validator(mode="before")
    @classmethod
    def _strip_label(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and isinstance(raw.get("label"), str):
            raw = {**raw, "label": raw["label"].strip()}
        if isinstance(raw, Mapping) and raw.get("label") is None:
            raw = {**raw, "label": ""}
        return raw


def canvas_node(raw: Any) -> Any:
    """Read a streamlit-flow node (React Flow type + ``data.node_type``) as a funnel node; others unchanged."""
    if isinstance(raw, Mapping) and raw.get("type") in CANVAS_TYPES:
        data = raw.get("data")
        if isinstance(data, Mapping) and isinstance(data.get("node_type"), str):
            return {**raw, "type": data["node_type"]}
    return raw


def effective_label(label: str, source: NodeBase | None) -> str:
    """An edge's label, where an unlabelled edge of a node whose only output is ``next`` means ``next``."""
    if not label and source is not None and outputs_of(source) == ["next"]:
        return "next"
    return label


class FunnelDefinition(BaseModel):
    """A parsed definition: each node through its registered schema, edges with resolved labels.

    Navigation helpers (``node``, ``start_node``, ``next_node_id``, ``connected_outputs``) are what the
    runtime uses to move a run along.
    """

    model_config = ConfigDict(extra="ignore")
    nodes: list[AnyNode] = Field(default_factory=list)  # type: ignore[valid-type]
    edges: list[Edge] = Field(default_factory=list)
    _nodes_by_id: dict[str, NodeBase] = PrivateAttr(default_factory=dict)
    _out: dict[str, dict[str, Edge]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_canvas(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and isinstance(raw.get("nodes"), list):
            raw = {**raw, "nodes": [canvas_node(n) for n in raw["nodes"]]}
        return raw

    def model_post_init(self, context: Any, /) -> None:
        """Index nodes and edges; give unlabelled edges of single-output nodes the ``next`` label."""
        self._nodes_by_id = {node.id: node for node in self.nodes}
        resolved = []
        for edge in self.edges:
            label = effective_label(edge.label, self._nodes_by_id.get(edge.source))
            resolved.append(edge if label == edge.label else edge.model_copy(update={"label": label}))
        self.edges = resolved
        out: dict[str, dict[str, Edge]] = defaultdict(dict)
        for edge in self.edges:
            out[edge.source].setdefault(edge.label, edge)
        self._out = dict(out)

    def node(self, node_id: str) -> NodeBase | None:
        """The node with that id, or None."""
        return self._nodes_by_id.get(node_id)

    def start_node(self) -> NodeBase | None:
        """The (first) trigger node, or None."""
        return next((n for n in self.nodes if spec_for(n).is_start), None)

    def triggers(self) -> list[NodeBase]:
        """Every start node (a valid definition has exactly one)."""
        return [n for n in self.nodes if spec_for(n).is_start]

    def trigger_candidates(self, funnel_id: Any) -> list[TriggerCandidate]:
        """This definition's start node(s) as ``engine.core.matching.pick_trigger`` candidates."""
        return [TriggerCandidate(funnel_id, node.id, node.data) for node in self.triggers()]  # type: ignore[attr-defined]

    def next_node_id(self, node_id: str, output: str | None) -> str | None:
        """Where ``output`` of ``node_id`` leads; None when nothing is connected (the run ends)."""
        if output is None:
            return None
        edge = self._out.get(node_id, {}).get(output)
        return edge.target if edge is not None and edge.target in self._nodes_by_id else None

    def connected_outputs(self, node_id: str) -> frozenset[str]:
        """Labels of ``node_id``'s outputs that have an edge (for ``ExecutionContext.connected_outputs``)."""
        return frozenset(self._out.get(node_id, {}))

    def context_for(self, node_id: str, ctx: ExecutionContext) -> ExecutionContext:
        """``ctx`` with ``connected_outputs`` set for ``node_id``."""
        return replace(ctx, connected_outputs=self.connected_outputs(node_id))
