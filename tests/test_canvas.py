"""workbench.editor.canvas: definition <-> streamlit-flow conversion, node content escaping, edits, auto-layout."""

from __future__ import annotations

import copy

from streamlit_flow import StreamlitFlowEdge, StreamlitFlowNode

from engine.core.definition import validate_definition
from engine.core.examples import scheduling_funnel, welcome_funnel
from workbench.editor import canvas


def browser_view(flow: dict) -> tuple[list[dict], list[dict]]:
    """What the component sends back: the library's own dict shapes."""
    return ([StreamlitFlowNode(**n).asdict() for n in flow["nodes"]],
            [StreamlitFlowEdge(**e).asdict() for e in flow["edges"]])


def test_round_trip_keeps_ids_types_data_positions_and_labels():
    for build in (scheduling_funnel, welcome_funnel):
        definition = build()
        nodes, edges = browser_view(canvas.to_flow(definition, validate_definition(definition)))
        assert canvas.from_flow(nodes, edges) == {
            "nodes": [{**n, "position": {k: float(v) for k, v in n["position"].items()}} for n in definition["nodes"]],
            "edges": definition["edges"]}


def test_canvas_nodes_use_built_in_types_and_fresh_styles():
    flow = canvas.to_flow(scheduling_funnel())
    kinds = {n["id"]: (n["node_type"], n["data"]["node_type"]) for n in flow["nodes"]}
    assert kinds["inicio"] == ("input", "trigger")
    assert kinds["fim"] == ("output", "end")
    assert kinds["pede_nome"] == ("default", "send_message")
    assert all(n["connectable"] and n["deletable"] for n in flow["nodes"])
    styles = [n["style"] for n in flow["nodes"]]
    assert len({id(s) for s in styles}) == len(styles)  # the library's shared default dict is never used
    nodes = [StreamlitFlowNode(**n) for n in flow["nodes"]]
    nodes[0].style["color"] = "red"
    assert "color" not in nodes[1].style


def test_browser_drawn_edge_gets_the_first_free_output():
    definition = scheduling_funnel()
    nodes, edges = browser_view(canvas.to_flow(definition))
    edges.append({"id": "st-flow-edge_espera_nome-fim", "source": "espera_nome", "target": "fim"})
    edges.append({"id": "st-flow-edge_espera_email-fim", "source": "espera_email", "target": "fim"})
    edges.append({"id": "st-flow-edge_pede_nome-fim", "source": "pede_nome", "target": "fim", "label": None})
    result = canvas.from_flow(nodes, edges)
    labels = {e["id"]: e["label"] for e in result["edges"]}
    assert labels["st-flow-edge_espera_nome-fim"] == "invalid"  # next and timeout are taken
    assert labels["st-flow-edge_espera_email-fim"] == ""  # next and invalid taken, no timeout: nothing free
    assert labels["st-flow-edge_pede_nome-fim"] == ""  # its only output is taken: left for validation to flag
    report = validate_definition(result)
    flagged = {p.edge_id: p.code for p in report.errors if p.edge_id}
    assert flagged == {"st-flow-edge_espera_email-fim": "invalid_edge_label",
                       "st-flow-edge_pede_nome-fim": "duplicate_edge"}  # an unlabelled edge of a next-only node
    assert canvas.first_free_output(result, "menu") is None


def test_hostile_text_is_escaped_in_node_content():
    definition = {"nodes": [
        {"id": "t", "type": "trigger", "position": {"x": 0, "y": 0},
         "data": {"kind": "keyword", "words": ["<img src=x onerror=alert(1)>"]}},
        {"id": "m", "type": "send_message", "position": {"x": 300, "y": 0}, "data": {"text": "**x** [l](http://e.vil)"}},
        {"id": "u", "type": "<script>alert(1)</script>", "position": {"x": 600, "y": 0}, "data": {}},
    ], "edges": [{"id": "e", "source": "t", "target": "m", "label": "next"}]}
    report = validate_definition(definition)
    contents = {n["id"]: n["data"]["content"] for n in canvas.to_flow(definition, report)["nodes"]}
    for content in contents.values():
        assert "<img" not in content and "<script" not in content
    assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;" in contents["t"]
    assert contents["m"].startswith("**Enviar mensagem**")
    assert "\\*\\*x\\*\\* \\[l\\]\\(http\\:\\/\\/e\\.vil\\)" in contents["m"]
    assert "&lt;script&gt;" in contents["u"] and "⚠" in contents["u"]  # unknown type, flagged
    assert canvas.escape_content("a\nb  c") == "a b c"


def test_problems_mark_their_nodes():
    definition = scheduling_funnel()
    definition["nodes"][1]["data"]["text"] = ""
    flow = canvas.to_flow(definition, validate_definition(definition))
    bad = next(n for n in flow["nodes"] if n["id"] == "pede_nome")
    good = next(n for n in flow["nodes"] if n["id"] == "inicio")
    assert bad["style"]["border"] == "2px solid #d32f2f" and "⚠ " in bad["data"]["content"]
    assert "border" not in good["style"] and "⚠" not in good["data"]["content"]


def test_edits_add_connect_relabel_delete():
    definition, node_id = canvas.add_node(scheduling_funnel(), "send_choices", "pede_nome")
    assert node_id == "send_choices_1"
    node = canvas.find_node(definition, node_id)
    anchor = canvas.find_node(definition, "pede_nome")
    assert node["position"]["x"] == anchor["position"]["x"] + canvas.COLUMN_WIDTH
    assert node["position"] != canvas.find_node(definition, "espera_nome")["position"]  # never on top of another
    assert canvas.outputs_for(node) == ["op1", "op2", "no_match"]
    definition = canvas.connect(definition, node_id, "op1", "fim")
    definition = canvas.connect(definition, node_id, "op1", "confirmacao")  # replaces the op1 edge
    assert [(e["label"], e["target"]) for e in canvas.outgoing(definition, node_id)] == [("op1", "confirmacao")]
    edge_id = canvas.outgoing(definition, node_id)[0]["id"]
    definition = canvas.set_edge_label(definition, edge_id, "op2")
    assert canvas.outgoing(definition, node_id)[0]["label"] == "op2"
    definition = canvas.delete_node(definition, node_id)
    assert canvas.find_node(definition, node_id) is None and not canvas.outgoing(definition, node_id)
    definition = canvas.delete_edge(definition, "inicio-next-pede_nome")
    assert not canvas.outgoing(definition, "inicio")
    assert canvas.add_node({"nodes": [], "edges": []}, "trigger")[0]["nodes"][0]["position"] == {"x": 0.0, "y": 0.0}


def test_auto_layout_goes_left_to_right_with_distinct_positions():
    definition = scheduling_funnel()
    for node in definition["nodes"]:
        node["position"] = {"x": 0, "y": 0}
    definition["edges"].append({"id": "loop", "source": "espera_horario", "target": "pede_nome", "label": "invalid"})
    definition["nodes"].append({"id": "solto", "type": "end", "position": {"x": 0, "y": 0}, "data": {}})
    laid = {n["id"]: n["position"] for n in canvas.auto_layout(definition)["nodes"]}
    assert len({(p["x"], p["y"]) for p in laid.values()}) == len(laid)
    chain = ["inicio", "pede_nome", "espera_nome", "pede_email", "espera_email", "pede_horario", "espera_horario",
             "tag_agendamento", "rota_vendas", "confirmacao", "fim"]
    xs = [laid[n]["x"] for n in chain]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert laid["email_invalido"]["x"] > laid["espera_email"]["x"]
    assert laid["solto"]["x"] > max(xs)  # unreachable: a column of its own at the end


def test_malformed_drafts_do_not_break_the_canvas():
    definition = {"nodes": [None, {"id": "a", "type": "send_message", "data": "oops", "position": "x"},
                            {"type": "end"}], "edges": [3, {"id": "e", "source": "a", "target": "zz"}]}
    flow = canvas.to_flow(definition, validate_definition(definition))
    assert [n["id"] for n in flow["nodes"]] == ["a"]
    assert flow["nodes"][0]["pos"] == (0.0, 0.0)
    assert canvas.auto_layout(definition)["nodes"][1]["position"] == {"x": 0.0, "y": 0.0}


def test_a_drawing_far_from_the_origin_is_moved_so_the_trigger_opens_in_view():
    definition = scheduling_funnel()
    assert canvas.trigger_in_view(definition) == definition  # already in view: untouched
    far = copy.deepcopy(definition)
    for node in far["nodes"]:
        node["position"] = {"x": node["position"]["x"] + 5000, "y": node["position"]["y"] - 3000}
    moved = canvas.trigger_in_view(far)
    trigger = next(n for n in moved["nodes"] if n["type"] == "trigger")
    assert trigger["position"] == {"x": canvas.VIEW_MARGIN, "y": canvas.VIEW_MARGIN}
    # the shape is kept: every node moved by the same amount
    shifts = {(m["position"]["x"] - f["position"]["x"], m["position"]["y"] - f["position"]["y"])
              for m, f in zip(moved["nodes"], far["nodes"], strict=True)}
    assert len(shifts) == 1
    assert moved["edges"] == far["edges"]
