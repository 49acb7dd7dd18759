"""Conversion between a funnel definition and the streamlit-flow canvas, plus the editor's graph edits.

Pure functions on plain dicts (no Streamlit here): ``pages/editor.py`` wraps what ``to_flow`` returns in
``StreamlitFlowNode`` / ``StreamlitFlowEdge`` and feeds what the browser sends back to ``from_flow``. What a node
type looks like (its name, summary, outputs, starting configuration) is read from its ``NodeSpec`` in the
registry; nothing here is written per node type.

Why the shapes look the way they do (docs/libraries.md, streamlit-flow 1.6.1):

- the canvas only draws the React Flow types ``default`` / ``input`` / ``output``, so the funnel type travels in
  ``data.node_type`` and the node's configuration in the rest of ``data`` (extra keys survive the round trip);
- a node has a single source handle, so an edge's *label* names the output it carries;
- ``data["content"]`` is rendered as Markdown *with raw HTML*, inside an iframe allowed to run scripts, so every
  piece of user text put there goes through ``escape_content`` first;
- the library shares one default ``style`` dict between nodes, so every node gets a fresh one here.

A draft may hold anything an import produced; nothing here assumes a node is well-formed.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from engine.core.definition import CANVAS_TYPES, ValidationReport
from engine.core.nodes import REGISTRY
from workbench.base.i18n import t

COLUMN_WIDTH = 300
ROW_HEIGHT = 150
SUMMARY_CHARS = 80
CANVAS_KEYS = ("content", "node_type")
"""Keys the canvas adds to ``data``; they are dropped when the canvas goes back to a definition."""
BROWSER_EDGE_PREFIX = "st-flow-edge_"
"""Id prefix streamlit-flow gives edges drawn in the browser (they arrive without a label)."""

_NODE_STYLE = {"width": 220, "fontSize": 12, "textAlign": "left", "padding": 8}
_PROBLEM_STYLE = {"border": "2px solid #d32f2f", "background": "#fff5f5"}
_SELECTED_STYLE = {"boxShadow": "0 0 0 3px #1976d2"}
# Every ASCII punctuation character may be backslash-escaped in CommonMark; & < > become entities instead so
# that rehype-raw never sees a tag.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKDOWN_PUNCTUATION = set("\\`*_{}[]()#+-.!|~:$\"'=/;,?@%^")


# -- reading a (possibly malformed) draft -------------------------------------------------------------------------

def _nodes(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [n for n in (definition.get("nodes") or []) if isinstance(n, dict) and isinstance(n.get("id"), str)]


def _edges(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e for e in (definition.get("edges") or []) if isinstance(e, dict)]


def node_type_of(node: Mapping[str, Any]) -> str:
    """The funnel type of a definition or canvas node (``data.node_type`` on canvas types)."""
    data = node.get("data") if isinstance(node.get("data"), dict) else {}
    kind = node.get("type")
    if kind in CANVAS_TYPES and isinstance(data.get("node_type"), str):
        return data["node_type"]
    return kind if isinstance(kind, str) else ""


def node_data(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node's configuration without the canvas' own keys."""
    data = node.get("data") if isinstance(node.get("data"), dict) else {}
    return {k: v for k, v in data.items() if k not in CANVAS_KEYS}


def _position(node: Mapping[str, Any]) -> dict[str, float]:
    pos = node.get("position") if isinstance(node.get("position"), dict) else {}
    x, y = pos.get("x", 0), pos.get("y", 0)
    return {"x": float(x) if isinstance(x, int | float) else 0.0, "y": float(y) if isinstance(y, int | float) else 0.0}



def find_node(definition: Mapping[str, Any], node_id: str | None) -> dict[str, Any] | None:
    """The node with that id, or None."""
    return next((n for n in _nodes(definition) if n["id"] == node_id), None)


def outputs_for(node: Mapping[str, Any]) -> list[str]:
    """Every output the node may produce, read from its configuration as it is: a node being edited is often
    unfinished (an empty question), and its outputs must still be offered. An unknown type offers ``next``."""
    spec = REGISTRY.get(node_type_of(node))
    return spec.outputs(node_data(node)) if spec is not None else ["next"]


# -- escaping and summaries --------------------------------------------------------------------------------------

def escape_content(text: Any) -> str:
    """``text`` made inert for streamlit-flow's Markdown + raw HTML renderer: tags become entities, Markdown
    punctuation is backslash-escaped and line breaks become spaces (a node shows one line per item)."""
    out = []
    for char in " ".join(str(text).split()):
        if char in _ENTITIES:
            out.append(_ENTITIES[char])
        elif char in _MARKDOWN_PUNCTUATION:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _short(text: Any, limit: int = SUMMARY_CHARS) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def summary(node: Mapping[str, Any]) -> str:
    """A short plain-text description of the node's configuration (unescaped; ``node_content`` escapes it)."""
    spec = REGISTRY.get(node_type_of(node))
    return spec.summary(node_data(node)) if spec is not None else ""


def type_label(kind: str) -> str:
    """The pt-BR name of a node type (the registry's palette label)."""
    spec = REGISTRY.get(kind)
    return spec.label if spec is not None else t("editor.unknown_type", type=kind)


def node_content(node: Mapping[str, Any], problems: Sequence[str] = ()) -> str:
    """The Markdown the canvas shows in a node: its type in bold, the summary and a ⚠ line per problem.

    Everything that comes from the definition (the type name of an unknown node, the summary, the problem
    messages, which quote user text) is escaped; only the ``**`` and line breaks are ours.
    """
    lines = [f"**{escape_content(type_label(node_type_of(node)))}**"]
    text = _short(summary(node))
    if text:
        lines.append(escape_content(text))
    lines.extend(f"⚠ {escape_content(_short(message, 120))}" for message in problems)
    return "\n\n".join(lines)


# -- definition <-> canvas ----------------------------------------------------------------------------------------

def problems_by_node(report: ValidationReport | None) -> dict[str, list[str]]:
    """Problem messages grouped by the node they concern (edge problems go to the edge's source node)."""
    grouped: dict[str, list[str]] = {}
    for problem in report.errors if report is not None else ():
        if problem.node_id is not None:
            grouped.setdefault(problem.node_id, []).append(problem.message)
    return grouped


def _canvas_type(node: Mapping[str, Any]) -> str:
    spec = REGISTRY.get(node_type_of(node))
    if spec is not None and spec.is_start:
        return "input"  # no target handle: nothing may connect into a trigger
    if spec is not None and not spec.outputs(node_data(node)):
        return "output"  # no source handle: the run ends here
    return "default"


def to_flow(definition: Mapping[str, Any], report: ValidationReport | None = None,
            selected_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The canvas for a definition: ``StreamlitFlowNode`` / ``StreamlitFlowEdge`` keyword arguments.

    Nodes get a fresh ``style`` each (a red border when the node has problems), handles on the left and right
    (funnels read left to right), and ``data`` = configuration + ``node_type`` + escaped ``content``.
    """
    problems = problems_by_node(report)
    nodes = []
    for node in _nodes(definition):
        kind = node_type_of(node)
        style = dict(_NODE_STYLE)
        if problems.get(node["id"]):
            style.update(_PROBLEM_STYLE)
        if node["id"] == selected_id:
            style.update(_SELECTED_STYLE)
        pos = _position(node)
        nodes.append({
            "id": node["id"], "pos": (pos["x"], pos["y"]), "node_type": _canvas_type(node),
            "data": {**copy.deepcopy(node_data(node)), "node_type": kind,
                     "content": node_content(node, problems.get(node["id"], []))},
            "source_position": "right", "target_position": "left", "connectable": True, "deletable": True,
            "selectable": True, "style": style,
        })
    edges = [{
        "id": str(edge.get("id", "")), "source": str(edge.get("source", "")), "target": str(edge.get("target", "")),
        "label": str(edge.get("label") or ""), "edge_type": "default", "deletable": True, "focusable": True,
        "label_show_bg": True, "marker_end": {"type": "arrowclosed"}, "style": {},
    } for edge in _edges(definition)]
    return {"nodes": nodes, "edges": edges}


def from_flow(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The definition for what the canvas holds (``StreamlitFlowNode.asdict()`` shapes, or the browser's).

    Keeps ids, types, configuration and positions; edge labels stay, except that an edge drawn in the browser
    (no label) gets the first output of its source that no other edge uses yet.
    """
    definition_nodes = [{"id": n.get("id"), "type": node_type_of(n), "position": _position(n), "data": node_data(n)}
                        for n in nodes if isinstance(n, Mapping)]
    by_id = {n["id"]: n for n in definition_nodes}
    definition_edges = [{"id": str(e.get("id", "")), "source": str(e.get("source", "")),
                         "target": str(e.get("target", "")), "label": str(e.get("label") or "")}
                        for e in edges if isinstance(e, Mapping)]
    for edge in definition_edges:
        if not edge["label"] and edge["source"] in by_id:
            edge["label"] = first_free_output(
                {"nodes": definition_nodes, "edges": definition_edges}, edge["source"]) or ""
    return {"nodes": definition_nodes, "edges": definition_edges}


def first_free_output(definition: Mapping[str, Any], node_id: str) -> str | None:
    """The first output of ``node_id`` that no edge carries yet, or None."""
    node = find_node(definition, node_id)
    if node is None:
        return None
    used = {e.get("label") for e in _edges(definition) if e.get("source") == node_id}
    return next((o for o in outputs_for(node) if o not in used), None)


# -- edits ------------------------------------------------------------------------------------------------------

def new_node_id(definition: Mapping[str, Any], kind: str) -> str:
    """``<type>_<n>`` with the smallest n not taken."""
    taken = {n["id"] for n in _nodes(definition)}
    number = 1
    while f"{kind}_{number}" in taken:
        number += 1
    return f"{kind}_{number}"


def default_data(kind: str) -> dict[str, Any]:
    """The configuration a new ``kind`` node starts with (its spec's ``default_data``)."""
    spec = REGISTRY.get(kind)
    return spec.default_data() if spec is not None else {}


def add_node(definition: Mapping[str, Any], kind: str, after_id: str | None = None) -> tuple[dict[str, Any], str]:
    """A copy of the definition with a new ``kind`` node placed to the right of ``after_id`` (or of the last node).

    The new node is placed in the first free row of that column so it never covers another node.
    """
    result = copy.deepcopy(dict(definition))
    result["nodes"] = list(result.get("nodes") or [])
    result["edges"] = list(result.get("edges") or [])
    anchor = find_node(result, after_id) or (_nodes(result)[-1] if _nodes(result) else None)
    x, y = (0.0, 0.0)
    if anchor is not None:
        pos = _position(anchor)
        x, y = pos["x"] + COLUMN_WIDTH, pos["y"]
    occupied = {(round(p["x"]), round(p["y"])) for p in map(_position, _nodes(result))}
    while (round(x), round(y)) in occupied:
        y += ROW_HEIGHT
    node_id = new_node_id(result, kind)
    result["nodes"].append({"id": node_id, "type": kind, "position": {"x": x, "y": y}, "data": default_data(kind)})
    return result, node_id


def update_node_data(definition: Mapping[str, Any], node_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with ``node_id``'s configuration replaced."""
    result = copy.deepcopy(dict(definition))
    for node in _nodes(result):
        if node["id"] == node_id:
            node["data"] = copy.deepcopy(dict(data))
    return result


def delete_node(definition: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    """A copy without the node and every edge touching it."""
    kept = [n for n in (definition.get("nodes") or []) if not (isinstance(n, dict) and n.get("id") == node_id)]
    return {**definition, "nodes": kept,
            "edges": [e for e in _edges(definition) if node_id not in (e.get("source"), e.get("target"))]}


def delete_edge(definition: Mapping[str, Any], edge_id: str) -> dict[str, Any]:
    """A copy without that edge."""
    return {**definition, "edges": [e for e in _edges(definition) if e.get("id") != edge_id]}


def connect(definition: Mapping[str, Any], source: str, output: str, target: str) -> dict[str, Any]:
    """A copy where ``source``'s ``output`` leads to ``target`` (replacing the edge that output had)."""
    edges = [e for e in _edges(definition) if not (e.get("source") == source and e.get("label") == output)]
    edge_id = f"{source}-{output}-{target}"
    edges.append({"id": edge_id, "source": source, "target": target, "label": output})
    return {**definition, "edges": edges}


def set_edge_label(definition: Mapping[str, Any], edge_id: str, label: str) -> dict[str, Any]:
    """A copy where the edge carries ``label``."""
    edges = [{**e, "label": label} if e.get("id") == edge_id else e for e in _edges(definition)]
    return {**definition, "edges": edges}


def outgoing(definition: Mapping[str, Any], node_id: str) -> list[dict[str, Any]]:
    """The edges leaving ``node_id``, in definition order."""
    return [e for e in _edges(definition) if e.get("source") == node_id]


# -- layout -------------------------------------------------------------------------------------------------------

VIEW_MARGIN = 40.0
"""Where the trigger lands (x and y) when a draft is moved into view."""
VIEW_WIDTH, VIEW_HEIGHT = 900.0, 500.0
"""The part of the drawing the canvas shows when it opens at zoom 1 (its top-left corner is the origin)."""


def trigger_in_view(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The draft as it is when its trigger is already where the canvas opens; otherwise a copy with every node
    moved by the same amount so that the trigger sits near the top-left corner.

    The canvas opens at reading size on the drawing's origin and cannot pan by itself, so an imported or
    hand-arranged funnel whose trigger lies far away would open on an empty corner. Moving the whole drawing
    keeps its shape; positions mean nothing else.
    """
    start = next((n for n in _nodes(definition) if (spec := REGISTRY.get(node_type_of(n))) and spec.is_start), None)
    if start is None:
        return dict(definition)
    pos = _position(start)
    if 0 <= pos["x"] <= VIEW_WIDTH / 2 and 0 <= pos["y"] <= VIEW_HEIGHT / 2:
        return dict(definition)
    dx, dy = VIEW_MARGIN - pos["x"], VIEW_MARGIN - pos["y"]
    result = copy.deepcopy(dict(definition))
    for node in _nodes(result):
        moved = _position(node)
        node["position"] = {"x": moved["x"] + dx, "y": moved["y"] + dy}
    return result


def auto_layout(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with positions laid out left to right: column = longest path from the trigger (edges that close a
    loop are ignored), rows in the order nodes were reached. Nodes no path reaches go to one last column."""
    nodes = _nodes(definition)
    ids = [n["id"] for n in nodes]
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for edge in _edges(definition):
        source, target = edge.get("source"), edge.get("target")
        if isinstance(source, str) and isinstance(target, str) and source in succ and target in succ:
            succ[source].append(target)
    starts = [n["id"] for n in nodes if node_type_of(n) in REGISTRY and REGISTRY[node_type_of(n)].is_start]
    roots = starts or [i for i in ids if not any(i in targets for targets in succ.values())][:1]
    # Depth-first order to find back edges (loops), then longest-path layering over the remaining DAG.
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    for root in roots:
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            current, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[current] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((current, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ[child])))
    reached = [i for i in ids if i in state]
    indegree = {i: 0 for i in reached}
    for source in reached:
        for target in succ[source]:
            if (source, target) not in back and target in indegree:
                indegree[target] += 1
    layer = {i: 0 for i in reached}
    order: list[str] = []
    queue = deque(i for i in reached if indegree[i] == 0)
    while queue:
        current = queue.popleft()
        order.append(current)
        for target in succ[current]:
            if (current, target) in back or target not in indegree:
                continue
            layer[target] = max(layer[target], layer[current] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                queue.append(target)
    last = max(layer.values(), default=-1) + 1
    rows: dict[int, int] = {}
    positions: dict[str, dict[str, float]] = {}
    for node_id in order + [i for i in ids if i not in layer]:
        column = layer.get(node_id, last)
        row = rows.get(column, 0)
        rows[column] = row + 1
        positions[node_id] = {"x": float(column * COLUMN_WIDTH), "y": float(row * ROW_HEIGHT)}
    result = copy.deepcopy(dict(definition))
    for node in _nodes(result):
        node["position"] = positions[node["id"]]
    return result


def canvas_signature(flow: Mapping[str, list[dict[str, Any]]]) -> str:
    """What the browser must be told about (everything but positions): when it changes, the page pushes the
    canvas again. Positions are left out because the browser owns them while someone drags nodes."""
    parts = [repr((n["id"], n["node_type"], n["data"], sorted(n["style"].items()))) for n in flow["nodes"]]
    parts += [repr((e["id"], e["source"], e["target"], e["label"])) for e in flow["edges"]]
    return "|".join(parts)
