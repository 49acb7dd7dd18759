"""A funnel definition: the canvas graph, its validation, JSON import/export and a pure walk over it.

Shape (what streamlit-flow keeps, configuration in ``data``, outputs on edge labels because the canvas has
one source handle per node)::

    {"nodes": [{"id": "n1", "type": "send_message", "position": {"x": 0, "y": 0}, "data": {"text": "Oi"}}],
     "edges": [{"id": "e1", "source": "n1", "target": "n2", "label": "next"}]}

streamlit-flow only knows the React Flow types ``default``/``input``/``output``; a canvas node of one of
those types carrying ``data.node_type`` is read as that funnel node type. An edge drawn without a label
from a node whose only output is ``next`` means ``next``.

``validate_definition`` reports every problem at once, each tied to a node or edge id with a machine code
and a pt-BR message, so the canvas can mark them all. ``FunnelDefinition`` itself only checks each node's
schema; publish only what ``validate_definition`` accepts (``ValidationReport.definition``).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from engine.core.matching import TriggerCandidate
from engine.core.nodes import PLANNED_TYPES, REGISTRY, AnyNode, execute_node, resume_node, spec_for, timeout_node
from engine.core.nodes import node_waits as _node_waits
from engine.core.nodes import outputs_of as _outputs_of
from engine.core.nodes import required_outputs_of as _required_outputs_of
from engine.core.nodes.base import Action, ExecutionContext, NodeBase, NodeResult, Wait

MAX_DEFINITION_BYTES = 2 * 1024 * 1024
"""Largest JSON accepted by ``import_json``."""
MAX_NODES = 500
MAX_EDGES = 2_000
MAX_STEPS = 200
"""Nodes one ``walk`` may execute before it stops the run (validation already refuses loops that never wait)."""

CANVAS_TYPES = ("default", "input", "output")

# pt-BR text for pydantic's own error types; our validators raise PydanticCustomError with pt-BR text already.
_PYDANTIC_MESSAGES = {
    "missing": "campo obrigatório não preenchido",
    "string_too_short": "não pode ficar vazio",
    "string_too_long": "texto longo demais (máximo {max_length} caracteres)",
    "too_short": "informe ao menos {min_length} item(ns)",
    "too_long": "no máximo {max_length} itens",
    "literal_error": "valor inválido; use {expected}",
    "int_parsing": "deve ser um número inteiro",
    "int_type": "deve ser um número inteiro",
    "int_from_float": "deve ser um número inteiro",
    "float_parsing": "deve ser um número",
    "float_type": "deve ser um número",
    "bool_parsing": "deve ser verdadeiro ou falso",
    "bool_type": "deve ser verdadeiro ou falso",
    "string_type": "deve ser um texto",
    "list_type": "deve ser uma lista",
    "model_type": "deve ser um objeto",
    "dict_type": "deve ser um objeto",
    "model_attributes_type": "deve ser um objeto",
    "greater_than_equal": "deve ser no mínimo {ge}",
    "greater_than": "deve ser maior que {gt}",
    "less_than_equal": "deve ser no máximo {le}",
    "less_than": "deve ser menor que {lt}",
    "string_pattern_mismatch": "formato inválido: use de 1 a 32 letras, números, _ ou -",
}
_CODE_BY_ERROR_TYPE = {
    "missing": "missing_field", "template_syntax": "template_error", "regex_invalid": "invalid_regex",
    # our own "fill this in" checks (raised by model validators) are missing fields too
    "keywords_missing": "missing_field", "tag_missing": "missing_field", "content_missing": "missing_field",
    "options_missing": "missing_field", "recipient_missing": "missing_field", "route_target_missing": "missing_field",
    "value_missing": "missing_field",
}


class DefinitionImportError(ValueError):
    """``import_json`` could not read the text; ``str(exc)`` is a pt-BR message for the user."""


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


def _effective_label(label: str, source: NodeBase | None) -> str:
    if not label and source is not None and _outputs_of(source) == ["next"]:
        return "next"
    return label


class FunnelDefinition(BaseModel):
    """A parsed definition: nodes through the one discriminated union, edges with resolved labels.

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
            label = _effective_label(edge.label, self._nodes_by_id.get(edge.source))
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


def outputs_of(node: NodeBase) -> list[str]:
    """Every edge label ``node`` may produce, e.g. ``["true", "false"]`` or an option's keys."""
    return _outputs_of(node)


# -- validation ----------------------------------------------------------------------------------------------------

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


PROBLEM_CODES = {
    "invalid_definition": "o JSON não tem a forma {nodes, edges}",
    "too_large": "nós ou conexões demais",
    "invalid_node": "nó malformado (sem id, id não é texto)",
    "duplicate_node_id": "dois nós com o mesmo id",
    "unknown_node_type": "tipo de nó desconhecido",
    "node_type_unavailable": "tipo de nó ainda não disponível",
    "missing_field": "campo obrigatório ausente",
    "invalid_field": "campo com valor inválido",
    "template_error": "erro de sintaxe num texto com {{...}}",
    "invalid_regex": "expressão regular inválida ou arriscada",
    "invalid_edge": "conexão malformada",
    "duplicate_edge_id": "duas conexões com o mesmo id",
    "dangling_edge": "conexão para/de um nó que não existe",
    "duplicate_edge": "duas conexões na mesma saída de um nó",
    "invalid_edge_label": "rótulo de conexão que não é uma saída do nó",
    "edge_into_trigger": "conexão chegando num gatilho",
    "missing_output": "saída obrigatória sem conexão",
    "no_start": "nenhum gatilho",
    "multiple_starts": "mais de um gatilho",
    "unreachable_node": "nó que nenhum caminho alcança",
    "loop_without_wait": "ciclo sem espera (rodaria sem parar)",
}
"""Every ``Problem.code`` with a short pt-BR description (for docs and filters)."""


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


def _field_path(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _pydantic_problems(exc: ValidationError, node_id: str) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        path = _field_path(err["loc"])
        template = _PYDANTIC_MESSAGES.get(kind)
        if template is not None:
            try:
                text = template.format(**(err.get("ctx") or {}))
            except (KeyError, IndexError):
                text = template
        else:
            text = err["msg"].removeprefix("Value error, ")
        code = _CODE_BY_ERROR_TYPE.get(kind, "invalid_field")
        problems.append(Problem(code, f"{path}: {text}" if path else text, node_id=node_id, field=path or None))
    return problems


def _strongly_connected(nodes: list[str], succ: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
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


def validate_definition(raw: Any) -> ValidationReport:
    """Check a raw definition and report every problem (see ``PROBLEM_CODES``), each with its node/edge id.

    Checks: shape and size; each node against its schema (unknown/unavailable types, missing and invalid
    fields, template syntax, regular expressions); edges (malformed, duplicate ids, dangling ends, labels
    that are not outputs of their source, two edges on one output, edges into the trigger); required
    outputs without an edge; exactly one trigger; nodes not reachable from the trigger; cycles in which no
    node waits (reply or a delay of at least a second).
    """
    problems: list[Problem] = []
    if not isinstance(raw, Mapping) or not isinstance(raw.get("nodes"), list) \
            or not isinstance(raw.get("edges", []), list):
        return ValidationReport((Problem("invalid_definition",
                                         "a definição deve ser um objeto com as listas 'nodes' e 'edges'"),))
    raw_nodes = [canvas_node(n) for n in raw["nodes"]]
    raw_edges = list(raw.get("edges") or [])
    if len(raw_nodes) > MAX_NODES or len(raw_edges) > MAX_EDGES:
        return ValidationReport((Problem("too_large", f"o funil pode ter no máximo {MAX_NODES} nós e "
                                                      f"{MAX_EDGES} conexões"),))

    # -- nodes ----------------------------------------------------------------------------------------------------
    node_types: dict[str, str | None] = {}  # every id present, parsed or not
    parsed: dict[str, NodeBase] = {}
    for position, item in enumerate(raw_nodes, start=1):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"].strip():
            problems.append(Problem("invalid_node", f"o {position}º nó não tem um id válido"))
            continue
        node_id = item["id"]
        if node_id in node_types:
            problems.append(Problem("duplicate_node_id", f"há mais de um nó com o id '{node_id}'", node_id=node_id))
            continue
        node_type = item.get("type")
        node_types[node_id] = node_type if isinstance(node_type, str) else None
        if not isinstance(node_type, str) or not node_type:
            problems.append(Problem("missing_field", "type: tipo do nó não informado", node_id=node_id, field="type"))
        elif node_type in PLANNED_TYPES:
            problems.append(Problem("node_type_unavailable",
                                    f"o nó '{PLANNED_TYPES[node_type]}' ainda não está disponível nesta versão",
                                    node_id=node_id, field="type"))
        elif node_type not in REGISTRY:
            problems.append(Problem("unknown_node_type", f"tipo de nó desconhecido: '{node_type}'",
                                    node_id=node_id, field="type"))
        else:
            try:
                parsed[node_id] = REGISTRY[node_type].schema.model_validate(item)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(exc, node_id))

    starts = [nid for nid, kind in node_types.items() if kind is not None and kind in REGISTRY
              and REGISTRY[kind].is_start]
    if not starts:
        problems.append(Problem("no_start", "o funil precisa de um gatilho (nó inicial)"))
    elif len(starts) > 1:
        for nid in starts:
            problems.append(Problem("multiple_starts", "o funil deve ter um único gatilho; há "
                                                       f"{len(starts)}", node_id=nid))

    # -- edges ----------------------------------------------------------------------------------------------------
    seen_edge_ids: set[str] = set()
    used_outputs: dict[tuple[str, str], str] = {}
    succ: dict[str, list[str]] = defaultdict(list)
    for position, item in enumerate(raw_edges, start=1):
        edge_id = item.get("id") if isinstance(item, Mapping) and isinstance(item.get("id"), str) else None
        try:
            edge = Edge.model_validate(item)
        except ValidationError as exc:
            where = f"conexão '{edge_id}'" if edge_id else f"{position}ª conexão"
            details = "; ".join(p.message for p in _pydantic_problems(exc, ""))
            problems.append(Problem("invalid_edge", f"{where} malformada: {details}", edge_id=edge_id))
            continue
        if edge.id in seen_edge_ids:
            problems.append(Problem("duplicate_edge_id", f"há mais de uma conexão com o id '{edge.id}'",
                                    edge_id=edge.id))
            continue
        seen_edge_ids.add(edge.id)
        missing_ends = [end for end in (edge.source, edge.target) if end not in node_types]
        if missing_ends:
            problems.append(Problem("dangling_edge", "a conexão liga um nó que não existe: "
                                    + ", ".join(f"'{e}'" for e in missing_ends), edge_id=edge.id,
                                    node_id=edge.source if edge.source in node_types else None))
            continue
        succ[edge.source].append(edge.target)
        if edge.target in starts:
            problems.append(Problem("edge_into_trigger", "nenhuma conexão pode chegar ao gatilho",
                                    edge_id=edge.id, node_id=edge.target))
        source = parsed.get(edge.source)
        if source is None:
            continue  # its own problems are reported; its outputs are unknown
        label = _effective_label(edge.label, source)
        outputs = _outputs_of(source)
        if label not in outputs:
            if not outputs:
                text = "este nó encerra o funil e não pode ter conexões de saída"
            elif not label:
                text = "a conexão precisa de um rótulo com a saída: " + ", ".join(outputs)
            else:
                text = f"'{label}' não é uma saída deste nó; use: " + ", ".join(outputs)
            problems.append(Problem("invalid_edge_label", text, edge_id=edge.id, node_id=edge.source))
            continue
        if (edge.source, label) in used_outputs:
            problems.append(Problem("duplicate_edge", f"a saída '{label}' já tem uma conexão "
                                    f"('{used_outputs[edge.source, label]}')", edge_id=edge.id,
                                    node_id=edge.source))
            continue
        used_outputs[edge.source, label] = edge.id

    for node_id, node in parsed.items():
        for output in _required_outputs_of(node):
            if (node_id, output) not in used_outputs:
                problems.append(Problem("missing_output", f"a saída '{output}' precisa de uma conexão",
                                        node_id=node_id, field=output))

    # -- graph ----------------------------------------------------------------------------------------------------
    if starts:
        reached = set(starts)
        queue = deque(starts)
        while queue:
            for target in succ.get(queue.popleft(), []):
                if target not in reached:
                    reached.add(target)
                    queue.append(target)
        for node_id in node_types:
            if node_id not in reached:
                problems.append(Problem("unreachable_node", "nenhum caminho a partir do gatilho chega a este nó",
                                        node_id=node_id))

    for component in _strongly_connected(list(node_types), succ):
        is_cycle = len(component) > 1 or component[0] in succ.get(component[0], [])
        if not is_cycle or any(nid not in parsed for nid in component):
            continue  # unparsed nodes may well wait; their own errors come first
        if not any(_node_waits(parsed[nid]) for nid in component):
            names = ", ".join(sorted(component))
            for nid in sorted(component):
                problems.append(Problem("loop_without_wait", f"ciclo sem espera ({names}): inclua um 'Aguardar "
                                        "resposta' ou um atraso de pelo menos 1 segundo", node_id=nid))

    if problems:
        return ValidationReport(tuple(problems))
    return ValidationReport((), FunnelDefinition.model_validate({"nodes": raw_nodes, "edges": raw_edges}))


def load_definition(raw: Any) -> FunnelDefinition:
    """Parse a definition that must be valid (e.g. a published version); raises ``ValueError`` otherwise."""
    report = validate_definition(raw)
    if report.definition is None:
        first = report.errors[0]
        where = f" (nó {first.node_id})" if first.node_id else f" (conexão {first.edge_id})" if first.edge_id else ""
        raise ValueError(f"definição de funil inválida{where}: {first.message}")
    return report.definition


# -- JSON import / export -------------------------------------------------------------------------------------------

def export_json(defn: FunnelDefinition | Mapping[str, Any]) -> str:
    """Serialize a definition as pretty, UTF-8 friendly JSON that ``import_json`` reads back."""
    if isinstance(defn, FunnelDefinition):
        payload = defn.model_dump(mode="json", exclude_none=True)
    else:
        payload = {"nodes": list(defn.get("nodes") or []), "edges": list(defn.get("edges") or [])}
    return json.dumps(payload, ensure_ascii=False, indent=2)


def _no_constants(name: str) -> Any:
    raise DefinitionImportError(f"o JSON contém o valor não suportado {name}")


def import_json(text: str | bytes) -> dict[str, Any]:
    """Read an exported definition; raises ``DefinitionImportError`` (pt-BR message) when it cannot.

    Only the reading is checked here (size, JSON syntax, the ``{nodes, edges}`` shape); run
    ``validate_definition`` on the result before saving it.
    """
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionImportError(f"arquivo grande demais ({size // 1024} KB; máximo "
                                    f"{MAX_DEFINITION_BYTES // 1024} KB)")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DefinitionImportError("o arquivo não está em UTF-8") from None
    if not text.strip():
        raise DefinitionImportError("o arquivo está vazio")
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise DefinitionImportError(f"JSON inválido na linha {exc.lineno}, coluna {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DefinitionImportError("JSON aninhado demais") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise DefinitionImportError("o JSON deve ser um objeto com a lista 'nodes' (e 'edges')")
    edges = data.get("edges", [])
    if not isinstance(edges, list):
        raise DefinitionImportError("'edges' deve ser uma lista")
    return {**data, "edges": edges}


# -- walking -----------------------------------------------------------------------------------------------------------

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
         timed_out: bool = False, max_steps: int = MAX_STEPS) -> Walk:
    """Move a run forward from ``node_id`` until it waits, ends or fails; pure.

    - default: execute ``node_id`` (a new run starts at the trigger's id), then follow outputs;
    - ``reply``: the run waits on ``node_id`` and the contact answered: the node's ``resume`` parses it
      (``ctx.attempts`` = the stored attempts; ``ctx.last_reply`` is set to the reply);
    - ``timed_out``: the wait deadline of ``node_id`` passed: the node's ``on_timeout``.

    Each next node sees the context updated by the previous results (variables, tags, contact fields).
    """
    node = defn.node(node_id)
    if node is None:
        return Walk((), "failed", node_id, ctx, error=f"nó '{node_id}' não existe nesta versão do funil")
    started = time.perf_counter()
    if reply is not None:
        ctx = replace(ctx, last_reply=reply)
        result = resume_node(node, defn.context_for(node_id, ctx), reply)
        if result is None:
            return Walk((), "ignored", node_id, ctx)
    elif timed_out:
        result = timeout_node(node, defn.context_for(node_id, ctx))
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
            return Walk(tuple(steps), "failed", node.id, ctx,
                        error=f"limite de {max_steps} passos seguidos sem espera atingido")
        node = defn.node(next_id)  # type: ignore[assignment]
        started = time.perf_counter()
        result = execute_node(node, defn.context_for(next_id, ctx))
