"""Funnel definitions: schema, every validation problem with its node/edge id, JSON import/export. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.core.definition import (
    MAX_DEFINITION_BYTES,
    PROBLEM_CODES,
    DefinitionImportError,
    FunnelDefinition,
    export_json,
    import_json,
    load_definition,
    outputs_of,
    validate_definition,
)
from engine.core.examples import EXAMPLES, scheduling_funnel, welcome_funnel
from engine.core.nodes import NODE_ADAPTER, PLANNED_TYPES, REGISTRY, parse_node


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}


def edge(source: str, target: str, label: str = "next", edge_id: str | None = None) -> dict[str, Any]:
    return {"id": edge_id or f"{source}->{target}:{label}", "source": source, "target": target, "label": label}


def start(node_id: str = "t") -> dict[str, Any]:
    return node(node_id, "trigger", kind="keyword", words=["oi"])


def problems(raw: Any) -> set[tuple[str, str | None]]:
    """(code, node id or edge id) pairs."""
    report = validate_definition(raw)
    return {(p.code, p.node_id or p.edge_id) for p in report.errors}


def test_minimal_valid_definition() -> None:
    raw = {"nodes": [start(), node("m", "send_message", text="Olá {{contact.name}}")], "edges": [edge("t", "m")]}
    report = validate_definition(raw)
    assert report.is_valid, report.errors
    assert isinstance(report.definition, FunnelDefinition)
    assert report.definition.next_node_id("t", "next") == "m"
    assert report.definition.next_node_id("m", "next") is None
    assert report.definition.start_node().id == "t"  # type: ignore[union-attr]


def test_every_problem_code_has_a_description() -> None:
    assert all(PROBLEM_CODES.values())


@pytest.mark.parametrize("raw", [None, [], "x", {"nodes": "x"}, {"edges": []}, {"nodes": [], "edges": {}}])
def test_invalid_shape(raw: Any) -> None:
    report = validate_definition(raw)
    assert report.codes() == {"invalid_definition"}
    assert not report.is_valid


def test_size_limit() -> None:
    raw = {"nodes": [node(f"n{i}", "end") for i in range(501)], "edges": []}
    assert validate_definition(raw).codes() == {"too_large"}


def test_node_problems_reported_together_with_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # every planned type now runs: a made-up one keeps the "not available yet" report tested
    monkeypatch.setattr("engine.core.definition.checks.PLANNED_TYPES", ("planned_step",))
    raw = {
        "nodes": [
            start(),
            node("unknown", "teleport"),
            node("ai", "planned_step"),
            {"id": "notype", "data": {}},
            {"type": "end"},
            node("dup", "end"),
            node("dup", "end"),
            node("empty_msg", "send_message"),
            node("bad_tpl", "send_message", text="Olá {{ contact.name "),
            node("bad_caption", "send_message", media={"kind": "image", "media_id": 1, "caption": "{% if %}"}),
            node("bad_media", "send_message", media={"kind": "sticker", "media_id": 1}),
            node("no_words", "trigger", kind="keyword", words=[]),
            node("bad_regex", "condition", groups=[{"rules": [{"field": "last_reply", "operator": "regex",
                                                               "value": "([a-z"}]}]),
            node("bad_field", "condition", groups=[{"rules": [{"field": "contact.senha", "operator": "equals",
                                                               "value": "x"}]}]),
            node("no_value", "condition", groups=[{"rules": [{"field": "last_reply", "operator": "equals"}]}]),
            node("bad_delay", "delay", seconds=-1, business_hours={"start": "18:00", "end": "09:00"}),
            node("bad_wait", "wait_reply", save_to="1abc", validation="cpf", timeout_s=0),
            node("bad_choices", "send_choices", prompt="?", options=[{"key": "timeout", "label": "A"}]),
            node("dup_keys", "send_choices", prompt="?", options=[{"key": "a", "label": "A"},
                                                                  {"key": "a", "label": "B"}]),
            node("bad_key", "send_choices", prompt="?", options=[{"key": "com espaço", "label": "A"}]),
            node("no_route", "route"),
            node("no_notify", "notify_human", message="Olá"),
            node("bad_goto", "go_to_funnel", funnel_id="abc"),
            node("bad_set", "set_field", target="contact.phone", value="x"),
            node("bad_tag", "add_tag", tag=""),
        ],
        "edges": [],
    }
    found = problems(raw)
    expected = {
        ("unknown_node_type", "unknown"), ("node_type_unavailable", "ai"), ("missing_field", "notype"),
        ("duplicate_node_id", "dup"), ("missing_field", "empty_msg"), ("template_error", "bad_tpl"),
        ("template_error", "bad_caption"), ("invalid_field", "bad_media"), ("missing_field", "no_words"),
        ("invalid_regex", "bad_regex"), ("invalid_field", "bad_field"), ("missing_field", "no_value"),
        ("invalid_field", "bad_delay"), ("invalid_field", "bad_wait"), ("invalid_field", "bad_choices"),
        ("invalid_field", "dup_keys"), ("invalid_field", "bad_key"), ("missing_field", "no_route"),
        ("missing_field", "no_notify"), ("invalid_field", "bad_goto"), ("invalid_field", "bad_set"),
        ("invalid_field", "bad_tag"), ("invalid_node", None), ("multiple_starts", "t"),
        ("multiple_starts", "no_words"),
    }
    assert expected <= found, expected - found
    report = validate_definition(raw)
    by_node = report.by_node()
    wait_fields = {p.field for p in by_node["bad_wait"]}
    assert {"data.save_to", "data.validation", "data.timeout_s"} <= wait_fields  # all three, not just the first
    assert all(p.message and p.code in PROBLEM_CODES for p in report.errors)
    assert any("não informado" in p.message for p in by_node["notype"])
    assert any("equipe" in p.message for p in by_node["no_route"])
    assert any("número inteiro" in p.message for p in by_node["bad_goto"])


def test_unknown_type_lists_message_in_portuguese() -> None:
    report = validate_definition({"nodes": [start(), node("x", "teleport")], "edges": [edge("t", "x")]})
    (problem,) = report.by_node()["x"]
    assert problem.message == "tipo de nó desconhecido: 'teleport'"


def test_edge_problems() -> None:
    raw = {
        "nodes": [
            start(),
            node("m", "send_message", text="oi"),
            node("c", "condition", groups=[{"rules": [{"field": "last_reply", "operator": "not_empty"}]}]),
            node("a", "send_message", text="a"),
            node("b", "send_message", text="b"),
            node("e", "end"),
            node("g", "go_to_funnel", funnel_id=2),
        ],
        "edges": [
            edge("t", "m"),
            edge("m", "c"),
            edge("c", "a", "true"),
            edge("c", "b", "true", edge_id="dup_true"),
            edge("c", "b", "maybe", edge_id="bad_label"),
            edge("a", "ghost", edge_id="dangling"),
            edge("phantom", "b", edge_id="dangling_source"),
            edge("b", "t", edge_id="into_trigger"),
            edge("e", "a", edge_id="from_end"),
            edge("g", "a", edge_id="from_goto"),
            edge("a", "e", edge_id="same_id"),
            edge("b", "e", edge_id="same_id"),
            {"id": "no_target", "source": "a"},
            {"source": "a", "target": "b"},
        ],
    }
    found = problems(raw)
    expected = {
        ("duplicate_edge", "c"), ("invalid_edge_label", "c"), ("dangling_edge", "a"),
        ("dangling_edge", "dangling_source"),
        ("edge_into_trigger", "t"), ("invalid_edge_label", "e"), ("invalid_edge_label", "g"),
        ("duplicate_edge_id", "same_id"), ("invalid_edge", "no_target"), ("invalid_edge", None),
        ("missing_output", "c"),  # false has no edge
        ("unreachable_node", "g"),
    }
    assert expected <= found, expected - found
    report = validate_definition(raw)
    edge_ids = set(report.by_edge())
    assert {"dup_true", "bad_label", "dangling", "into_trigger", "from_end", "from_goto", "same_id"} <= edge_ids
    bad_label = report.by_edge()["bad_label"][0]
    assert "true, false" in bad_label.message
    missing = [p for p in report.by_node()["c"] if p.code == "missing_output"]
    assert [p.field for p in missing] == ["false"]


def test_required_outputs_per_node_type() -> None:
    raw = {
        "nodes": [
            start(),
            node("w", "wait_reply", timeout_s=60),
            node("w2", "wait_reply"),
            node("ch", "send_choices", prompt="?", options=[{"key": "a", "label": "A"}, {"key": "b", "label": "B"}],
                 timeout_s=60),
        ],
        "edges": [edge("t", "w"), edge("w", "w2"), edge("w2", "ch"), edge("ch", "w", "a")],
    }
    missing = {(p.node_id, p.field) for p in validate_definition(raw).errors if p.code == "missing_output"}
    assert missing == {("w", "timeout"), ("ch", "b"), ("ch", "timeout")}
    # the trigger must lead somewhere
    lonely = validate_definition({"nodes": [start()], "edges": []})
    assert {(p.code, p.node_id, p.field) for p in lonely.errors} == {("missing_output", "t", "next")}


def test_start_problems() -> None:
    assert problems({"nodes": [node("m", "send_message", text="x")], "edges": []}) == {("no_start", None)}
    two = problems({"nodes": [start("t1"), start("t2")], "edges": []})
    assert {("multiple_starts", "t1"), ("multiple_starts", "t2")} <= two


def test_unreachable_nodes() -> None:
    raw = {"nodes": [start(), node("a", "send_message", text="a"), node("island", "send_message", text="i"),
                     node("island2", "end")],
           "edges": [edge("t", "a"), edge("island", "island2")]}
    assert problems(raw) == {("unreachable_node", "island"), ("unreachable_node", "island2")}


def test_loop_without_wait_is_reported_per_node() -> None:
    raw = {
        "nodes": [start(), node("a", "send_message", text="a"), node("b", "add_tag", tag="x"),
                  node("c", "delay", seconds=0.5), node("self", "set_field", target="vars.x", value="1")],
        "edges": [edge("t", "a"), edge("a", "b"), edge("b", "c"), edge("c", "a"),
                  edge("self", "self")],
    }
    found = problems(raw)
    assert {("loop_without_wait", "a"), ("loop_without_wait", "b"), ("loop_without_wait", "c"),
            ("loop_without_wait", "self")} <= found


def test_loops_through_waiting_nodes_are_fine() -> None:
    raw = {
        "nodes": [start(), node("ask", "send_message", text="Qual seu e-mail?"), node("w", "wait_reply"),
                  node("c", "condition", groups=[{"rules": [{"field": "last_reply", "operator": "contains",
                                                             "value": "@"}]}]),
                  node("ok", "send_message", text="ok"), node("d", "delay", seconds=60),
                  node("again", "send_message", text="de novo")],
        "edges": [edge("t", "ask"), edge("ask", "w"), edge("w", "c"), edge("c", "ok", "true"),
                  edge("c", "d", "false"), edge("d", "again"), edge("again", "ask")],
    }
    report = validate_definition(raw)
    assert report.is_valid, report.errors


def test_several_kinds_at_once() -> None:
    raw = {
        "nodes": [start(), node("m", "send_message", text="{{"), node("x", "mystery"),
                  node("c", "condition", groups=[{"rules": [{"field": "tags", "operator": "has_tag", "value": "a"}]}])],
        "edges": [edge("t", "m"), edge("m", "nowhere"), edge("m", "c", edge_id="second_next"),
                  edge("c", "c", "true"), edge("c", "c", "false", edge_id="self_false")],
    }
    codes = {p.code for p in validate_definition(raw).errors}
    assert {"template_error", "unknown_node_type", "dangling_edge", "unreachable_node", "loop_without_wait"} <= codes


def test_unlabelled_edges_mean_next_for_single_output_nodes() -> None:
    raw = {"nodes": [start(), node("m", "send_message", text="x"),
                     node("c", "condition", groups=[{"rules": [{"field": "last_reply", "operator": "is_empty"}]}]),
                     node("a", "end"), node("b", "end")],
           "edges": [{"id": "e1", "source": "t", "target": "m"},
                     {"id": "e2", "source": "m", "target": "c", "label": None},
                     {"id": "e3", "source": "c", "target": "a"}, edge("c", "b", "false")]}
    report = validate_definition(raw)
    assert {(p.code, p.edge_id) for p in report.errors} == {("invalid_edge_label", "e3"), ("missing_output", None)}
    raw["edges"][2]["label"] = " true "
    report = validate_definition(raw)
    assert report.is_valid, report.errors
    assert report.definition.edges[0].label == "next"  # type: ignore[union-attr]
    assert report.definition.next_node_id("c", "true") == "a"  # type: ignore[union-attr]


def test_canvas_nodes_carry_their_type_in_data() -> None:
    raw = {"nodes": [{"id": "t", "type": "input", "position": {"x": 1, "y": 2},
                      "data": {"node_type": "trigger", "kind": "any_message", "content": "**Gatilho**"},
                      "width": 200, "selected": True},
                     {"id": "m", "type": "default", "position": {"x": 3, "y": 4},
                      "data": {"node_type": "send_message", "text": "Oi", "content": "Mensagem"}}],
           "edges": [{"id": "st-flow-edge_t-m", "source": "t", "target": "m", "animated": False}]}
    report = validate_definition(raw)
    assert report.is_valid, report.errors
    assert [n.type for n in report.definition.nodes] == ["trigger", "send_message"]  # type: ignore[union-attr]
    assert report.definition.nodes[0].position.y == 2  # type: ignore[union-attr]


def test_outputs_of_each_type() -> None:
    choices = parse_node(node("c", "send_choices", prompt="?", options=[{"key": "a", "label": "A"},
                                                                       {"key": "b", "label": "B"}], timeout_s=5))
    assert outputs_of(choices) == ["a", "b", "no_match", "timeout"]
    assert outputs_of(parse_node(node("w", "wait_reply"))) == ["next", "invalid"]
    assert outputs_of(parse_node(node("w", "wait_reply", timeout_s=9))) == ["next", "invalid", "timeout"]
    cond = parse_node(node("c", "condition", groups=[{"rules": [{"field": "tags", "operator": "has_tag",
                                                                 "value": "x"}]}]))
    assert outputs_of(cond) == ["true", "false"]
    assert outputs_of(parse_node(node("e", "end"))) == []
    assert outputs_of(parse_node(node("g", "go_to_funnel", funnel_id=3))) == []
    assert outputs_of(parse_node(node("d", "delay", seconds=3))) == ["next"]


def test_registry_and_union_agree() -> None:
    assert set(REGISTRY) == {"trigger", "send_message", "send_choices", "wait_reply", "ai_reply", "condition",
                             "ab_split", "delay", "add_tag", "remove_tag", "set_field", "notify_human", "webhook",
                             "odoo", "go_to_funnel", "route", "end"}
    assert set(PLANNED_TYPES) == set()
    for node_type, spec in REGISTRY.items():
        assert spec.schema.model_fields["type"].annotation.__args__ == (node_type,)  # type: ignore[union-attr]
        assert spec.label
    assert NODE_ADAPTER.validate_python(node("e", "end")).type == "end"


def _chain(length: int) -> dict[str, Any]:
    """A 200-node funnel: trigger, then ask/wait/condition blocks with a loop back through a wait."""
    nodes, edges = [start()], []
    previous = "t"
    for i in range((length - 1) // 4):
        ask, wait, cond, tag = f"ask{i}", f"wait{i}", f"cond{i}", f"tag{i}"
        nodes += [node(ask, "send_message", text=f"Pergunta {i}, {{{{contact.name}}}}?"),
                  node(wait, "wait_reply", save_to=f"vars.r{i}", timeout_s=3600),
                  node(cond, "condition", groups=[{"rules": [{"field": f"vars.r{i}", "operator": "not_empty"}]}]),
                  node(tag, "add_tag", tag=f"etapa{i}")]
        edges += [edge(previous, ask), edge(ask, wait), edge(wait, cond), edge(wait, ask, "timeout"),
                  edge(cond, tag, "true"), edge(cond, ask, "false")]
        previous = tag
    while len(nodes) < length:
        extra = f"x{len(nodes)}"
        nodes.append(node(extra, "set_field", target="vars.fim", value="sim"))
        edges.append(edge(previous, extra))
        previous = extra
    return {"nodes": nodes, "edges": edges}


def test_two_hundred_node_funnel_validates() -> None:
    raw = _chain(200)
    assert len(raw["nodes"]) == 200
    report = validate_definition(raw)
    assert report.is_valid, report.errors[:5]
    assert len(report.definition.nodes) == 200  # type: ignore[union-attr]


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_examples_validate_and_have_positions(key: str) -> None:
    name, build = EXAMPLES[key]
    raw = build()
    report = validate_definition(raw)
    assert report.is_valid, report.errors
    positions = {(n["position"]["x"], n["position"]["y"]) for n in raw["nodes"]}
    assert len(positions) == len(raw["nodes"])  # no two nodes drawn on top of each other
    assert name.startswith("Funil")
    assert build() is not build() and build() == build()


def test_export_import_round_trip() -> None:
    defn = load_definition(scheduling_funnel())
    text = export_json(defn)
    assert "Olá!" in text  # UTF-8 kept readable
    again = load_definition(import_json(text))
    assert again == defn
    assert export_json(welcome_funnel()) == json.dumps(welcome_funnel(), ensure_ascii=False, indent=2)
    assert load_definition(import_json(export_json(welcome_funnel()).encode())).nodes[0].id == "inicio"


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "vazio"),
    ("{", "linha 1"),
    ('{"nodes": [], }', "JSON inválido"),
    ("[]", "objeto"),
    ('{"edges": []}', "nodes"),
    ('{"nodes": [], "edges": 3}', "edges"),
    ('{"nodes": [NaN], "edges": []}', "NaN"),
    ("[" * 100_000 + "]" * 100_000, ""),
    (b"\xff\xfe{", "UTF-8"),
])
def test_import_errors(text: str | bytes, fragment: str) -> None:
    with pytest.raises(DefinitionImportError) as info:
        import_json(text)
    assert fragment in str(info.value)


def test_import_refuses_oversized_input() -> None:
    big = '{"nodes": [], "edges": [], "pad": "' + "x" * MAX_DEFINITION_BYTES + '"}'
    with pytest.raises(DefinitionImportError, match="grande demais"):
        import_json(big)


def test_load_definition_raises_on_invalid() -> None:
    with pytest.raises(ValueError, match="gatilho"):
        load_definition({"nodes": [], "edges": []})


def test_ai_reply_configuration_problems() -> None:
    good = {"key": "email", "type": "email", "save_to": "contact.custom_data.email"}
    raw = {"nodes": [
        start(),
        node("no_prompt", "ai_reply", prompt="  ", fields=[good]),
        node("no_options", "ai_reply", prompt="Qualifique", fields=[{"key": "plano", "type": "choice"}]),
        node("twice", "ai_reply", prompt="Qualifique", fields=[good, good]),
        node("bad_key", "ai_reply", prompt="Qualifique", fields=[{"key": "e-mail"}]),
        node("bad_target", "ai_reply", prompt="Qualifique", fields=[{"key": "x", "save_to": "contact.phone"}]),
        node("bad_turns", "ai_reply", prompt="Qualifique {{ contact.name ", max_turns=0),
        node("ok", "ai_reply", prompt="Qualifique. {{history}}", fields=[good]),
    ], "edges": [edge("t", "ok")]}
    report = validate_definition(raw)
    by_node = report.by_node()
    assert "missing_field" in {p.code for p in by_node["no_prompt"]}
    assert any("escreva as instruções para a IA" in p.message for p in by_node["no_prompt"])
    assert any("informe as opções do campo plano" in p.message for p in by_node["no_options"])
    assert any("mesma chave" in p.message for p in by_node["twice"])
    for node_id in ("bad_key", "bad_target"):
        assert {p.code for p in by_node[node_id]} >= {"invalid_field"}, node_id
    assert {p.code for p in by_node["bad_turns"]} >= {"template_error", "invalid_field"}
    assert {p.code for p in by_node["ok"]} == {"missing_output"}, "qualificado must lead somewhere"
