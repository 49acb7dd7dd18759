"""Validation of a raw definition: every problem at once, each tied to a node or edge id.

``validate_definition`` runs three groups of checks, in this order, and reports all they find:

- node checks: malformed or duplicate ids, unknown or not yet available types, each node against its schema
  (missing and invalid fields, template syntax, regular expressions), exactly one trigger;
- edge checks: malformed edges, duplicate ids, dangling ends, edges into the trigger, labels that are not
  outputs of their source, two edges on one output;
- graph checks: required outputs without an edge, nodes no path from the trigger reaches, cycles in which no
  node waits (a reply, or a delay of at least a second).

Every message comes from the catalog (``workbench/base/i18n.py``, keys ``definition.*``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from engine.core.definition.model import Edge, FunnelDefinition, canvas_node, effective_label
from engine.core.nodes import PLANNED_TYPES, REGISTRY, node_waits, outputs_of, required_outputs_of
from engine.core.nodes.base import PUBLISHED, NodeBase
from workbench.base.i18n import has_key, t

MAX_NODES = 500
MAX_EDGES = 2_000

PROBLEM_CODES = {code: t(f"definition.problem.{code}") for code in (
    "invalid_definition", "too_large", "invalid_node", "duplicate_node_id", "unknown_node_type",
    "node_type_unavailable", "missing_field", "invalid_field", "template_error", "invalid_regex", "invalid_edge",
    "duplicate_edge_id", "dangling_edge", "duplicate_edge", "invalid_edge_label", "edge_into_trigger",
    "missing_output", "no_start", "multiple_starts", "unreachable_node", "loop_without_wait", "unknown_reference")}
"""Every ``Problem.code`` with a short pt-BR description (for docs and filters). ``unknown_reference`` (a team,
person or number id that is not the workspace's) needs the database: ``workbench.services.funnels.validate``
adds it."""

_CODE_BY_ERROR_TYPE = {"missing": "missing_field", "template_syntax": "template_error",
                       "regex_invalid": "invalid_regex"}
"""Problem codes of schema errors; any other error type ending in ``_missing`` (a node's own "fill this in" check,
e.g. ``keywords_missing``) is a ``missing_field`` too, and the rest are ``invalid_field``."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition.

    Attributes:
        code: machine code, e.g. ``dangling_edge`` (see ``PROBLEM_CODES``).
        message: pt-BR text for the user.
        node_id: the node it concerns, if any.
        edge_id: the edge it concerns, if any.
        field: dotted path inside the node (``data.options.1.key``), for field errors.
    """

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    """Every problem found; ``definition`` is the parsed model when there are none."""

    errors: tuple[Problem, ...] = ()
    definition: FunnelDefinition | None = None

    @property
    def is_valid(self) -> bool:
        """True when nothing is wrong (the definition may be published)."""
        return not self.errors

    def by_node(self) -> dict[str, list[Problem]]:
        """Problems grouped by node id, for marking nodes on the canvas."""
        grouped: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.errors:
            if problem.node_id is not None:
                grouped[problem.node_id].append(problem)
        return dict(grouped)

    def by_edge(self) -> dict[str, list[Problem]]:
        """Problems grouped by edge id."""
        grouped: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.errors:
            if problem.edge_id is not None:
                grouped[problem.edge_id].append(problem)
        return dict(grouped)

    def codes(self) -> set[str]:
        """The distinct codes present."""
        return {p.code for p in self.errors}


@dataclass
class _Graph:
    """What the checks learn as they go: node ids and types, parsed nodes, triggers, used outputs, successors.

    ``context`` is the pydantic validation context the node schemas get (``PUBLISHED`` when loading to run).
    """

    context: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str | None] = field(default_factory=dict)  # every id present, parsed or not
    parsed: dict[str, NodeBase] = field(default_factory=dict)
    starts: list[str] = field(default_factory=list)
    used_outputs: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, output) -> edge id
    succ: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def validate_definition(raw: Any) -> ValidationReport:
    """Check a raw definition and report every problem (see ``PROBLEM_CODES``), each with its node/edge id."""
    return _validate(raw, {})


def _validate(raw: Any, context: dict[str, Any]) -> ValidationReport:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("nodes"), list) \
            or not isinstance(raw.get("edges", []), list):
        return ValidationReport((Problem("invalid_definition", t("definition.invalid_definition")),))
    raw_nodes = [canvas_node(n) for n in raw["nodes"]]
    raw_edges = list(raw.get("edges") or [])
    if len(raw_nodes) > MAX_NODES or len(raw_edges) > MAX_EDGES:
        return ValidationReport((Problem("too_large", t("definition.too_large", max_nodes=MAX_NODES,
                                                        max_edges=MAX_EDGES)),))
    graph = _Graph(context=context)
    problems = [*check_nodes(raw_nodes, graph), *check_edges(raw_edges, graph), *check_graph(graph)]
    if problems:
        return ValidationReport(tuple(problems))
    return ValidationReport((), FunnelDefinition.model_validate({"nodes": raw_nodes, "edges": raw_edges},
                                                                context=context))


def load_definition(raw: Any) -> FunnelDefinition:
    """Parse a published version to run it; raises ``ValueError`` when it is not valid.

    Checks added after a version was published do not stop it from loading (``PUBLISHED``): a regular
    expression RE2 cannot run loads and never matches.
    """
    report = _validate(raw, {PUBLISHED: True})
    if report.definition is None:
        first = report.errors[0]
        where = t("definition.invalid.node", node_id=first.node_id) if first.node_id \
            else t("definition.invalid.edge", edge_id=first.edge_id) if first.edge_id else ""
        raise ValueError(t("definition.invalid", where=where, message=first.message))
    return report.definition


# -- node checks ---------------------------------------------------------------------------------------------------

def check_nodes(raw_nodes: list[Any], graph: _Graph) -> list[Problem]:
    """Each node's id, type and schema, then exactly one trigger; fills ``graph.types/parsed/starts``."""
    problems: list[Problem] = []
    for position, item in enumerate(raw_nodes, start=1):
        problems += _check_node(position, item, graph)
    graph.starts = [nid for nid, kind in graph.types.items() if kind in REGISTRY and REGISTRY[kind].is_start]
    if not graph.starts:
        problems.append(Problem("no_start", t("definition.no_start")))
    elif len(graph.starts) > 1:
        problems += [Problem("multiple_starts", t("definition.multiple_starts", count=len(graph.starts)), node_id=nid)
                     for nid in graph.starts]
    return problems


def _check_node(position: int, item: Any, graph: _Graph) -> list[Problem]:
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"].strip():
        return [Problem("invalid_node", t("definition.invalid_node", position=position))]
    node_id = item["id"]
    if node_id in graph.types:
        return [Problem("duplicate_node_id", t("definition.duplicate_node_id", node_id=node_id), node_id=node_id)]
    node_type = item.get("type")
    graph.types[node_id] = node_type if isinstance(node_type, str) else None
    if not isinstance(node_type, str) or not node_type:
        return [Problem("missing_field", t("definition.type_missing"), node_id=node_id, field="type")]
    if node_type in PLANNED_TYPES:
        return [Problem("node_type_unavailable", t("definition.node_type_unavailable",
                                                   label=t(f"node.{node_type}.label")), node_id=node_id, field="type")]
    if node_type not in REGISTRY:
        return [Problem("unknown_node_type", t("definition.unknown_node_type", type=node_type), node_id=node_id,
                        field="type")]
    try:
        graph.parsed[node_id] = REGISTRY[node_type].schema.model_validate(item, context=graph.context)
    except ValidationError as exc:
        return pydantic_problems(exc, node_id)
    return []


def pydantic_problems(exc: ValidationError, node_id: str) -> list[Problem]:
    """One problem per schema error, in pt-BR: the catalog's words for pydantic's own error types, our messages
    for the errors our validators raise."""
    try:
        errors = exc.errors(include_url=False)
    except UnicodeEncodeError:
        # pydantic cannot write a message quoting a value with a lone surrogate (stored drafts are cleaned of
        # them, a canvas state or an unsaved import is not): say so for the node instead of failing
        return [Problem("invalid_field", t("definition.pydantic.string_unicode"), node_id=node_id)]
    problems = []
    for err in errors:
        kind = err["type"]
        path = ".".join(str(part) for part in err["loc"])
        key = f"definition.pydantic.{kind}"
        text = t(key, **(err.get("ctx") or {})) if has_key(key) else err["msg"].removeprefix("Value error, ")
        code = _CODE_BY_ERROR_TYPE.get(kind, "missing_field" if kind.endswith("_missing") else "invalid_field")
        problems.append(Problem(code, f"{path}: {text}" if path else text, node_id=node_id, field=path or None))
    return problems


# -- edge checks ---------------------------------------------------------------------------------------------------

def check_edges(raw_edges: list[Any], graph: _Graph) -> list[Problem]:
    """Each edge's shape, ends and label; fills ``graph.used_outputs/succ``."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for position, item in enumerate(raw_edges, start=1):
        edge_id = item.get("id") if isinstance(item, Mapping) and isinstance(item.get("id"), str) else None
        try:
            edge = Edge.model_validate(item)
        except ValidationError as exc:
            where = t("definition.invalid_edge.id", edge_id=edge_id) if edge_id \
                else t("definition.invalid_edge.position", position=position)
            details = "; ".join(p.message for p in pydantic_problems(exc, ""))
            problems.append(Problem("invalid_edge", t("definition.invalid_edge", where=where, details=details),
                                    edge_id=edge_id))
            continue
        if edge.id in seen:
            problems.append(Problem("duplicate_edge_id", t("definition.duplicate_edge_id", edge_id=edge.id),
                                    edge_id=edge.id))
            continue
        seen.add(edge.id)
        problems += _check_edge(edge, graph)
    return problems


def _check_edge(edge: Edge, graph: _Graph) -> list[Problem]:
    missing_ends = [end for end in (edge.source, edge.target) if end not in graph.types]
    if missing_ends:
        ends = ", ".join(f"'{e}'" for e in missing_ends)
        return [Problem("dangling_edge", t("definition.dangling_edge", ends=ends), edge_id=edge.id,
                        node_id=edge.source if edge.source in graph.types else None)]
    graph.succ[edge.source].append(edge.target)
    problems = []
    if edge.target in graph.starts:
        problems.append(Problem("edge_into_trigger", t("definition.edge_into_trigger"), edge_id=edge.id,
                                node_id=edge.target))
    source = graph.parsed.get(edge.source)
    if source is None:
        return problems  # its own problems are reported; its outputs are unknown
    label = effective_label(edge.label, source)
    outputs = outputs_of(source)
    if label not in outputs:
        text = t("definition.edge_from_end") if not outputs \
            else t("definition.edge_label_missing", outputs=", ".join(outputs)) if not label \
            else t("definition.edge_label_invalid", label=label, outputs=", ".join(outputs))
        return [*problems, Problem("invalid_edge_label", text, edge_id=edge.id, node_id=edge.source)]
    if (edge.source, label) in graph.used_outputs:
        text = t("definition.duplicate_edge", label=label, edge_id=graph.used_outputs[edge.source, label])
        return [*problems, Problem("duplicate_edge", text, edge_id=edge.id, node_id=edge.source)]
    graph.used_outputs[edge.source, label] = edge.id
    return problems


# -- graph checks --------------------------------------------------------------------------------------------------

def check_graph(graph: _Graph) -> list[Problem]:
    """Required outputs without an edge, nodes no path reaches, loops that never wait."""
    return [*_missing_outputs(graph), *_unreachable(graph), *_loops_without_wait(graph)]


def _missing_outputs(graph: _Graph) -> list[Problem]:
    return [Problem("missing_output", t("definition.missing_output", output=output), node_id=node_id, field=output)
            for node_id, node in graph.parsed.items() for output in required_outputs_of(node)
            if (node_id, output) not in graph.used_outputs]


def _unreachable(graph: _Graph) -> list[Problem]:
    if not graph.starts:
        return []
    reached = set(graph.starts)
    queue = deque(graph.starts)
    while queue:
        for target in graph.succ.get(queue.popleft(), []):
            if target not in reached:
                reached.add(target)
                queue.append(target)
    return [Problem("unreachable_node", t("definition.unreachable_node"), node_id=node_id)
            for node_id in graph.types if node_id not in reached]


def _loops_without_wait(graph: _Graph) -> list[Problem]:
    problems = []
    for component in strongly_connected(list(graph.types), graph.succ):
        is_cycle = len(component) > 1 or component[0] in graph.succ.get(component[0], [])
        if not is_cycle or any(nid not in graph.parsed for nid in component):
            continue  # unparsed nodes may well wait; their own errors come first
        if not any(node_waits(graph.parsed[nid]) for nid in component):
            names = ", ".join(sorted(component))
            problems += [Problem("loop_without_wait", t("definition.loop_without_wait", names=names), node_id=nid)
                         for nid in sorted(component)]
    return problems


def strongly_connected(nodes: Iterable[str], succ: Mapping[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of a graph: Tarjan's algorithm, iterative (no recursion limit on long
    chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            children = succ.get(v, [])
            if i < len(children):
                work.append((v, i + 1))
                w = children[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return result
