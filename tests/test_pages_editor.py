"""Editor de funil (pages/editor.py): the canvas, the node form, the palette, save/publish/discard and the test
chat, driven through AppTest. The canvas is a custom component: AppTest shows it as an ``UnknownElement`` whose
``json_args`` carry the nodes, and a browser event is faked by setting the canvas' session-state key."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.core.definition import validate_definition
from engine.core.examples import scheduling_funnel
from engine.core.nodes.condition import ConditionData
from pages.ui import fields
from tests.factories import make_actor, make_instance, make_team, make_workspace
from tests.test_pages_app import signed_in_app
from workbench.services import ai_client, contact_fields, entry_links, funnels, secrets
from workbench.store.db import session_scope
from workbench.store.models import Media, Tag

ROOT = Path(__file__).resolve().parent.parent


def open_editor(actor, funnel_id: int | None) -> AppTest:
    at = signed_in_app(actor)
    if funnel_id is not None:
        at.session_state["editor_funnel_id"] = funnel_id
    at.run()
    return at.switch_page("pages/editor.py").run()


def canvas_args(at: AppTest) -> dict:
    [element] = [el for el in at.get("component_instance")]
    return json.loads(element.proto.json_args)


def click(at: AppTest, funnel_id: int, node_id: str) -> AppTest:
    """What the browser sends when a node is clicked: its nodes and edges plus the selected id."""
    args = canvas_args(at)
    at.session_state[f"editor_canvas_{funnel_id}"] = {
        "nodes": args["nodes"], "edges": args["edges"], "selectedId": node_id, "timestamp": int(time.time() * 1000)}
    return at.run()


def texts(at: AppTest) -> list[str]:
    return [el.value for el in at.text]


def example(role: str = "admin"):
    ws = make_workspace()
    admin = make_actor(ws)
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    return fid, admin if role == "admin" else make_actor(ws, role=role)


def test_opens_with_the_canvas_holding_the_draft(engine, r):
    fid, actor = example("supervisor")
    at = open_editor(actor, fid)
    assert not at.exception
    assert [t.value for t in at.title] == ["Editor de funil"]
    args = canvas_args(at)
    assert [n["id"] for n in args["nodes"]] == [n["id"] for n in scheduling_funnel()["nodes"]]
    first = args["nodes"][0]
    assert (first["type"], first["data"]["node_type"], first["connectable"], first["deletable"]) == (
        "input", "trigger", True, True)
    assert "**Gatilho**" in first["data"]["content"]
    assert {e["label"] for e in args["edges"]} == {"next", "timeout", "invalid"}
    assert "Agendamento" in texts(at)
    assert at.success[0].value == "Nenhum problema: o rascunho pode ser publicado."


def test_click_shows_the_form_edit_and_save_updates_the_draft(engine, r):
    fid, admin = example()
    at = open_editor(admin, fid)
    assert at.caption and "Clique num nó do quadro" in " ".join(c.value for c in at.caption)
    at = click(at, fid, "pede_email")
    assert not at.exception
    assert "pede_email" in texts(at) and "Enviar mensagem" in texts(at)
    [text_area] = [w for w in at.text_area if w.label == "Texto"]
    assert text_area.value == "Obrigado, {{contact.name}}! Qual é o seu melhor e-mail?"
    assert any("{{contact.custom_data.X}}" in c.value for c in at.caption)
    text_area.input("Oi {{contact.name}}, seu e-mail?")
    at = at.button(key="editor_apply_pede_email").click().run()
    assert "Configurações aplicadas ao rascunho (ainda não salvas)." in [s.value for s in at.success]
    assert "Há alterações não salvas neste rascunho." in [c.value for c in at.caption]
    content = next(n for n in canvas_args(at)["nodes"] if n["id"] == "pede_email")["data"]["content"]
    assert "Oi \\{\\{contact\\.name\\}\\}\\, seu e\\-mail\\?" in content
    assert funnels.get_funnel(admin, fid)["draft"] == scheduling_funnel()  # not saved yet
    at = at.button(key="editor_save").click().run()
    assert not at.exception
    draft = funnels.get_funnel(admin, fid)["draft"]
    node = next(n for n in draft["nodes"] if n["id"] == "pede_email")
    # Only the edited key changes: "typing" was left out of the definition and stays out.
    assert node == {"id": "pede_email", "type": "send_message", "position": {"x": 900.0, "y": 150.0},
                    "data": {"text": "Oi {{contact.name}}, seu e-mail?"}}
    assert draft["edges"] == scheduling_funnel()["edges"]


def test_select_widgets_and_number_fields(engine, r):
    fid, admin = example()
    at = click(open_editor(admin, fid), fid, "espera_email")
    assert at.selectbox(key=f"editor_pick_{fid}").value == "espera_email"
    [validation] = [w for w in at.selectbox if w.label == "Validação"]
    assert validation.value == "email" and "Uma das opções" in validation.options
    [retries] = [w for w in at.number_input if w.label == "Novas tentativas"]
    assert retries.value == 2
    retries.set_value(4)
    at = at.button(key="editor_apply_espera_email").click().run()
    at = at.button(key="editor_save").click().run()
    node = next(n for n in funnels.get_funnel(admin, fid)["draft"]["nodes"] if n["id"] == "espera_email")
    assert node["data"]["max_retries"] == 4 and node["data"]["validation"] == "email"


def test_palette_adds_a_node_to_the_right_and_connects_it(engine, r):
    fid, admin = example()
    at = click(open_editor(admin, fid), fid, "confirmacao")
    assert "Enviar mensagem" in at.selectbox(key="editor_palette_type").options
    at.selectbox(key="editor_palette_type").set_value("add_tag")
    at = at.button(key="editor_add").click().run()
    assert not at.exception
    nodes = {n["id"]: n for n in canvas_args(at)["nodes"]}
    assert nodes["add_tag_1"]["position"]["x"] == nodes["confirmacao"]["position"]["x"] + 300
    assert nodes["add_tag_1"]["style"]["border"].startswith("2px solid")  # empty tag: a problem
    assert "⚠" in nodes["add_tag_1"]["data"]["content"]
    assert at.selectbox(key=f"editor_pick_{fid}").value == "add_tag_1"  # the new node is selected
    # Connect the new node's output to the end node from the side panel.
    at.selectbox(key="editor_connect_target_add_tag_1").set_value("fim")
    at = at.button(key="editor_connect_add_tag_1").click().run()
    edges = canvas_args(at)["edges"]
    assert {"source": "add_tag_1", "target": "fim", "label": "next"}.items() <= next(
        e for e in edges if e["source"] == "add_tag_1").items()
    problems = at.expander[0]
    assert problems.label.startswith("Problemas")


def test_browser_drawn_edge_gets_the_first_free_output(engine, r):
    fid, admin = example()
    at = open_editor(admin, fid)
    args = canvas_args(at)
    args["edges"].append({"id": "st-flow-edge_espera_nome-fim", "source": "espera_nome", "target": "fim"})
    at.session_state[f"editor_canvas_{fid}"] = {"nodes": args["nodes"], "edges": args["edges"], "selectedId": None,
                                                "timestamp": int(time.time() * 1000)}
    at = at.run()
    edge = next(e for e in canvas_args(at)["edges"] if e["id"] == "st-flow-edge_espera_nome-fim")
    assert edge["label"] == "invalid"  # next and timeout were taken


def test_publish_invalid_shows_problems_then_discard(engine, r):
    fid, admin = example()
    funnels.publish(admin, fid)
    at = click(open_editor(admin, fid), fid, "confirmacao")
    at = at.button(key="editor_delete_node_confirmacao").click().run()
    assert "confirmacao" not in [n["id"] for n in canvas_args(at)["nodes"]]
    at = at.button(key="editor_publish").click().run()
    assert [e.value for e in at.error] == ["O funil tem 1 problema(s) a corrigir antes de publicar."]
    problems = " ".join(texts(at))
    assert "rota_vendas: a saída 'next' precisa de uma conexão" not in problems  # route's next is optional
    assert "fim: nenhum caminho a partir do gatilho chega a este nó" in problems
    node = next(n for n in canvas_args(at)["nodes"] if n["id"] == "fim")
    assert "⚠" in node["data"]["content"] and node["style"]["border"] == "2px solid #d32f2f"
    at = at.button(key="editor_discard").click().run()
    at = at.button(key="editor_discard_yes").click().run()
    assert "Rascunho descartado: o editor voltou para a versão publicada." in [s.value for s in at.success]
    assert [n["id"] for n in canvas_args(at)["nodes"]] == [n["id"] for n in scheduling_funnel()["nodes"]]
    assert funnels.get_funnel(admin, fid)["draft"] == scheduling_funnel()


def test_layout_places_nodes_left_to_right(engine, r):
    fid, admin = example()
    at = open_editor(admin, fid).button(key="editor_layout").click().run()
    nodes = {n["id"]: n["position"] for n in canvas_args(at)["nodes"]}
    assert nodes["inicio"]["x"] < nodes["pede_nome"]["x"] < nodes["espera_nome"]["x"] < nodes["fim"]["x"]


def test_canvas_opens_at_reading_size_and_fits_only_when_asked(engine, r):
    fid, admin = example()
    at = open_editor(admin, fid)
    args = canvas_args(at)
    # No fit: the canvas opens at zoom 1 on the flow's origin, where the trigger is.
    assert args["fitView"] is False and args["height"] >= 600
    trigger = next(n for n in args["nodes"] if n["id"] == "inicio")["position"]
    assert 0 <= trigger["x"] and 0 <= trigger["y"] <= args["height"] - 150
    at = at.button(key="editor_fit").click().run()
    fitted = canvas_args(at)
    # Fitted once, with a push (a newer timestamp): the canvas fits only when it takes a state.
    assert fitted["fitView"] is True and fitted["timestamp"] > args["timestamp"]
    at = click(at, fid, "pede_email")
    assert canvas_args(at)["fitView"] is False


def test_test_chat_runs_the_draft_without_touching_the_database(engine, r):
    fid, admin = example()
    at = open_editor(admin, fid)
    assert "Envie uma mensagem para começar." in texts(at)
    at = at.chat_input(key=f"editor_chat_input_{fid}").set_value("quero vendas").run()
    assert not at.exception
    assert "Olá! Sou o assistente virtual do time de vendas. Para começar, qual é o seu nome?" in texts(at)
    assert "Aguardando no nó espera_nome." in texts(at)
    at = at.chat_input(key=f"editor_chat_input_{fid}").set_value("<b>Carla</b>").run()
    assert "Obrigado, <b>Carla</b>! Qual é o seu melhor e-mail?" in texts(at)  # literal, not HTML
    path = next(v for v in texts(at) if v.startswith("1. inicio"))
    assert "3. espera_nome (Aguardar resposta) → aguardando" in path
    assert "4. espera_nome (Aguardar resposta) → saída next" in path
    assert at.json[0].value and json.loads(at.json[0].value)["contact"]["name"] == "<b>Carla</b>"
    assert at.button(key="editor_chat_timeout").disabled  # the e-mail wait has no timeout
    at = at.button(key="editor_chat_reset").click().run()
    assert "Envie uma mensagem para começar." in texts(at)
    assert funnels.list_funnels(admin)[0]["entered"] == 0


def test_agent_cannot_open_the_editor(engine, r):
    fid, agent = example("agent")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        open_editor(agent, fid)  # app.py does not register the page for agents
    # Loaded directly all the same, the page refuses before reading the funnel.
    at = AppTest.from_file(str(ROOT / "pages" / "editor.py"), default_timeout=60)
    at.session_state["auth_actor"] = agent
    at.session_state["editor_funnel_id"] = fid
    at.run()
    assert [e.value for e in at.error] == ["Só administradores e supervisores podem editar funis."]
    assert not at.get("component_instance")


def test_without_a_funnel_points_to_the_list(engine, r):
    fid, admin = example()
    at = open_editor(admin, None)
    assert at.info[0].value == "Escolha um funil em Funis e clique em Editar."


def test_funnels_card_opens_the_editor(engine, r):
    fid, admin = example()
    at = signed_in_app(admin)
    at.run()
    at = at.switch_page("pages/funnels.py").run()
    at = at.button(key=f"funnels_edit_{fid}").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Editor de funil"]
    assert at.session_state["editor_funnel_id"] == fid


# -- typed forms: condition rules, business hours, library media ---------------------------------------------------

TYPED = {
    "nodes": [
        {"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0},
         "data": {"kind": "keyword", "mode": "contains", "words": ["oi"]}},
        # Quirks a hand-written import may have: a rule without "field", a value of None, an extra key.
        {"id": "filtro", "type": "condition", "position": {"x": 300, "y": 0},
         "data": {"groups": [{"rules": [{"operator": "contains", "value": "sim"},
                                        {"field": "vars.plano", "operator": "is_empty", "value": None}]},
                             {"rules": [{"field": "tags", "operator": "has_tag", "value": "vip", "note": "x"}]}]}},
        {"id": "espera", "type": "delay", "position": {"x": 600, "y": 0},
         "data": {"seconds": 60, "business_hours": {"days": [4, 0], "start": "08:30", "end": "17:00"}}},
        {"id": "foto", "type": "send_message", "position": {"x": 900, "y": 0},
         "data": {"text": "Veja", "media": {"kind": "image", "media_id": 999999}}},
        {"id": "fim", "type": "end", "position": {"x": 1200, "y": 0}, "data": {}},
    ],
    "edges": [
        {"id": "e1", "source": "inicio", "target": "filtro", "label": "next"},
        {"id": "e2", "source": "filtro", "target": "espera", "label": "true"},
        {"id": "e3", "source": "filtro", "target": "fim", "label": "false"},
        {"id": "e4", "source": "espera", "target": "foto", "label": "next"},
        {"id": "e5", "source": "foto", "target": "fim", "label": "next"},
    ],
}


def typed_funnel():
    ws = make_workspace()
    admin = make_actor(ws)
    return ws, admin, funnels.create_funnel(admin, "Tipado", copy.deepcopy(TYPED))


def widget(widgets, suffix: str):
    """The widget whose key ends with ``suffix`` (form widget keys carry the funnel, a counter and the node)."""
    [found] = [w for w in widgets if w.key and w.key.endswith(suffix)]
    return found


def form_key(at: AppTest, fid: int, node_id: str) -> str:
    """The prefix of the node form's widget keys now (it changes when rules are added or removed)."""
    return f"editor_w_{fid}_{at.session_state[f'editor_nonce_{fid}']}_{node_id}"


def stored_data(admin, fid: int, node_id: str) -> dict:
    return next(n for n in funnels.get_funnel(admin, fid)["draft"]["nodes"] if n["id"] == node_id)["data"]


def add_library_media(workspace_id: int, filename: str, mime: str, in_library: bool = True) -> int:
    with session_scope() as s:
        media = Media(workspace_id=workspace_id, sha256=uuid.uuid4().hex + uuid.uuid4().hex, mime=mime, size=10,
                      filename=filename, in_library=in_library)
        s.add(media)
        s.flush()
        return media.id


def test_untouched_typed_forms_apply_to_identical_data(engine, r):
    ws, admin, fid = typed_funnel()
    add_library_media(ws, "outra.png", "image/png")
    at = open_editor(admin, fid)
    for node_id in ("filtro", "espera", "foto"):
        at = click(at, fid, node_id)
        assert not at.exception
        assert not [w for w in at.text_area if "avançado" in w.label]  # no JSON for the marketer
        at = at.button(key=f"editor_apply_{node_id}").click().run()
        assert "Configurações aplicadas ao rascunho (ainda não salvas)." in [s.value for s in at.success]
    at = at.button(key="editor_save").click().run()
    assert funnels.get_funnel(admin, fid)["draft"] == TYPED


def test_condition_rules_are_edited_with_widgets(engine, r):
    ws, admin, fid = typed_funnel()
    at = click(open_editor(admin, fid), fid, "filtro")
    subject = widget(at.selectbox, "_groups_0_0_subject")
    assert subject.value == "last_reply" and "Última resposta" in subject.options
    operator = widget(at.selectbox, "_groups_0_0_op")
    assert operator.value == "contains" and "o contato tem a tag" in operator.options
    assert widget(at.text_input, "_groups_0_0_value").value == "sim"
    # "is empty" takes no value: its value box is not shown; "has tag" needs no subject, and asks for a tag.
    assert not [w for w in at.text_input if w.key.endswith("_groups_0_1_value")]
    assert widget(at.text_input, "_groups_0_1_name").value == "plano"
    assert not [w for w in at.selectbox if w.key.endswith("_groups_1_0_subject")]
    assert widget(at.text_input, "_groups_1_0_value").label == "Tag"

    # Rule 1: "contact.custom_data.cidade equals {{vars.cidade}}"; the field picker takes a typed key too.
    widget(at.selectbox, "_groups_0_1_subject").set_value("custom_data")
    at = widget(at.selectbox, "_groups_0_1_op").set_value("equals").run()
    picker = widget(at.selectbox, "_groups_0_1_field")
    assert picker.label == "Nome do campo"
    picker.options.append("cidade")  # the browser sends a typed key like an option
    picker.set_value("cidade")
    at = widget(at.text_input, "_groups_0_1_value").input("{{vars.cidade}}").run()
    # Adding a rule applies what was typed, then shows a new row (a fresh, still unfinished rule).
    at = at.button(key=f"{form_key(at, fid, 'filtro')}_groups_add_0").click().run()
    assert not at.exception
    assert widget(at.selectbox, "_groups_0_1_field").value == "cidade"
    widget(at.selectbox, "_groups_0_2_subject").set_value("contact.name")
    at = widget(at.selectbox, "_groups_0_2_op").set_value("not_empty").run()
    # Remove the tag group's only rule (the group goes with it), then add a new OR group.
    at = at.button(key=f"{form_key(at, fid, 'filtro')}_groups_remove_1_0").click().run()
    at = at.button(key=f"{form_key(at, fid, 'filtro')}_groups_add_group").click().run()
    widget(at.selectbox, "_groups_1_0_op").set_value("greater")
    at = widget(at.selectbox, "_groups_1_0_subject").set_value("vars").run()
    widget(at.text_input, "_groups_1_0_name").input("idade")
    at = widget(at.text_input, "_groups_1_0_value").input("17").run()
    at = at.button(key="editor_apply_filtro").click().run()
    at = at.button(key="editor_save").click().run()
    assert not at.exception
    groups = stored_data(admin, fid, "filtro")["groups"]
    assert groups == [
        {"rules": [{"operator": "contains", "value": "sim"},
                   {"field": "contact.custom_data.cidade", "operator": "equals", "value": "{{vars.cidade}}"},
                   {"field": "contact.name", "operator": "not_empty", "value": ""}]},
        {"rules": [{"field": "vars.idade", "operator": "greater", "value": "17"}]},
    ]
    ConditionData.model_validate({"groups": groups})  # what the form produced is what the schema takes
    report = validate_definition(funnels.get_funnel(admin, fid)["draft"])
    assert not [p for p in report.errors if p.node_id == "filtro"]


def test_business_hours_switch_days_and_times(engine, r):
    ws, admin, fid = typed_funnel()
    at = click(open_editor(admin, fid), fid, "espera")
    assert widget(at.toggle, "_business_hours_on").value is True
    days = widget(at.multiselect, "_business_hours_days")
    assert days.value == [0, 4] and days.options == ["seg", "ter", "qua", "qui", "sex", "sáb", "dom"]
    assert widget(at.time_input, "_business_hours_start").value == dt.time(8, 30)
    days.set_value([0, 1, 2, 3, 4, 5])
    at = widget(at.time_input, "_business_hours_end").set_value(dt.time(12, 0)).run()
    at = at.button(key="editor_apply_espera").click().run()
    at = at.button(key="editor_save").click().run()
    assert stored_data(admin, fid, "espera") == {
        "seconds": 60, "business_hours": {"days": [0, 1, 2, 3, 4, 5], "start": "08:30", "end": "12:00"}}
    # Switched off, the days and times go away, and so does the setting.
    at = widget(at.toggle, "_business_hours_on").set_value(False).run()
    assert not [w for w in at.multiselect if w.key.endswith("_business_hours_days")]
    at = at.button(key="editor_apply_espera").click().run()
    at = at.button(key="editor_save").click().run()
    assert stored_data(admin, fid, "espera") == {"seconds": 60}
    # Switched on again, it starts from the usual week (Monday to Friday, 9:00 to 18:00).
    at = widget(at.toggle, "_business_hours_on").set_value(True).run()
    assert widget(at.multiselect, "_business_hours_days").value == [0, 1, 2, 3, 4]
    at = at.button(key="editor_apply_espera").click().run()
    at = at.button(key="editor_save").click().run()
    assert stored_data(admin, fid, "espera")["business_hours"] == {"days": [0, 1, 2, 3, 4], "start": "09:00",
                                                                   "end": "18:00"}


def test_media_is_picked_from_the_library(engine, r):
    ws, admin, fid = typed_funnel()
    promo = add_library_media(ws, "**promo**.png", "image/png")
    add_library_media(ws, "audio.ogg", "audio/ogg; codecs=opus")
    add_library_media(ws, "fora-da-biblioteca.png", "image/png", in_library=False)
    add_library_media(make_workspace("Outra"), "de-outro-espaco.png", "image/png")
    at = click(open_editor(admin, fid), fid, "foto")
    assert widget(at.selectbox, "_media_kind").value == "image"
    picker = widget(at.selectbox, "_media_id")
    # The id the node sends is kept even though it is no longer in the library; names are plain option text.
    assert picker.options == ["mídia #999999", "**promo**.png"] and picker.value == 999999
    at = picker.set_value(promo).run()
    at = widget(at.text_input, "_media_caption").input("Promoção de {{contact.name}}").run()
    at = at.button(key="editor_apply_foto").click().run()
    at = at.button(key="editor_save").click().run()
    assert stored_data(admin, fid, "foto") == {
        "text": "Veja", "media": {"kind": "image", "media_id": promo, "caption": "Promoção de {{contact.name}}"}}
    # Another kind lists only that kind's files; a kind with none points to the library page.
    at = widget(at.selectbox, "_media_kind").set_value("audio").run()
    assert widget(at.selectbox, "_media_id").options == ["audio.ogg"]
    at = widget(at.selectbox, "_media_kind").set_value("video").run()
    assert not [w for w in at.selectbox if w.key.endswith("_media_id")]
    assert "Biblioteca de mídia" in " ".join(c.value for c in at.caption)
    # "Sem mídia" takes the media off the message.
    at = widget(at.selectbox, "_media_kind").set_value("").run()
    at = at.button(key="editor_apply_foto").click().run()
    at = at.button(key="editor_save").click().run()
    assert stored_data(admin, fid, "foto") == {"text": "Veja"}


def test_a_value_the_typed_form_cannot_show_falls_back_to_json(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    definition = copy.deepcopy(TYPED)
    definition["nodes"][1]["data"]["groups"][0]["rules"][0]["field"] = "contact.email"  # not a known subject
    fid = funnels.create_funnel(admin, "Importado", definition)
    at = click(open_editor(admin, fid), fid, "filtro")
    [advanced] = [w for w in at.text_area if w.label == "Regras (avançado: JSON)"]
    assert json.loads(advanced.value) == definition["nodes"][1]["data"]["groups"]
    at = at.button(key="editor_apply_filtro").click().run()
    at = at.button(key="editor_save").click().run()
    assert funnels.get_funnel(admin, fid)["draft"] == definition


def test_teams_people_and_numbers_are_picked_by_name(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    seller = make_actor(ws, "agent", "ana.vendas@example.com")
    team = make_team(ws, "Vendas <b>SP</b>", seller.user_id)
    number = make_instance(ws, "Comercial **SP**")
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    at = click(open_editor(admin, fid), fid, "rota_vendas")
    team_box, agent_box = widget(at.selectbox, "_team_id"), widget(at.selectbox, "_agent_id")
    assert team_box.options == ["—", "Vendas <b>SP</b>"] and team_box.value is None  # names as plain option text
    assert "ana.vendas" in agent_box.options
    team_box.set_value(team)
    at = agent_box.set_value(seller.user_id).run()
    at = at.button(key="editor_apply_rota_vendas").click().run()
    at = click(at, fid, "inicio")
    numbers = widget(at.multiselect, "_instance_ids")
    assert numbers.options == ["Comercial **SP**"] and numbers.value == []
    at = numbers.set_value([number]).run()
    at = at.button(key="editor_apply_inicio").click().run()
    at = at.button(key="editor_save").click().run()
    route = stored_data(admin, fid, "rota_vendas")
    assert (route["team_id"], route["agent_id"], route["team_name"]) == (team, seller.user_id, "Vendas")
    assert stored_data(admin, fid, "inicio")["instance_ids"] == [number]


def test_the_funnel_to_go_to_is_picked_by_name(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    target = funnels.create_funnel(admin, "Pós-venda <i>nova</i>")
    fid = funnels.create_funnel(admin, "Triagem", {
        "nodes": [{"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "manual"}},
                  {"id": "ir", "type": "go_to_funnel", "position": {"x": 300, "y": 0}, "data": {}}],
        "edges": [{"id": "e1", "source": "inicio", "target": "ir", "label": "next"}]})
    at = click(open_editor(admin, fid), fid, "ir")
    picker = widget(at.selectbox, "_funnel_id")
    assert picker.label == "Funil" and picker.value is None
    assert set(picker.options) == {"—", "Pós-venda <i>nova</i>", "Triagem"}  # names as plain option text
    at = picker.set_value(target).run()
    at = at.button(key="editor_apply_ir").click().run()
    at = at.button(key="editor_save").click().run()
    assert stored_data(admin, fid, "ir") == {"funnel_id": target}


def test_every_choice_source_gives_ids_and_names(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    make_team(ws, "Vendas")
    inst = make_instance(ws, "Comercial")
    funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    add_library_media(ws, "promo.png", "image/png")
    with session_scope() as s:
        s.add(Tag(workspace_id=ws, name="vip"))
    contact_fields.create_field(admin, "plano", "Plano", "text")
    with session_scope() as s:
        ai_client.save_provider(s, ws, "Local", base_url="http://127.0.0.1:9/v1", model="m", api_key="sk-x")
    secrets.set_secret(admin, "crm_token", "valor-secreto-123")
    entry_links.create_link(admin, name="Bio", instance_id=inst, source="Instagram", phone="5511988887777")
    for source, rows_of in fields.SOURCES.items():
        rows = rows_of(admin)
        assert rows and all(isinstance(row["name"], str) and row["id"] is not None for row in rows), source
    assert fields.SOURCES["tags"](admin) == [{"id": "vip", "name": "vip"}]  # a node stores the tag's name
    # plano, then the source fields the first entry link defined
    assert fields.SOURCES["contact_fields"](admin)[:2] == [{"id": "plano", "name": "Plano", "type": "text"},
                                                          {"id": "origem", "name": "Origem", "type": "text"}]
    assert fields.SOURCES["entry_links"](admin)[0]["name"] == "Bio"
    assert fields.SOURCES["secrets"](admin) == [{"id": "crm_token", "name": "crm_token"}]  # names, never values


def test_test_chat_runs_the_ai_step_against_the_provider_as_a_marked_real_call(engine, r, fake_llm):
    from engine.core.examples import ai_qualification_funnel

    ws = make_workspace()
    admin = make_actor(ws)
    with session_scope() as s:
        ai_client.save_provider(s, ws, "Local", base_url=fake_llm.url, model="fake-model", api_key="sk-x",
                                is_default=True)
    fid = funnels.create_funnel(admin, "IA", ai_qualification_funnel())
    fake_llm.script([{"tool_calls": [{"name": "registrar_dados",
                                      "arguments": {"nome": "Lia", "email": "lia@inventado.com"}}],
                      "text": "Oi, Lia! <b>Qual</b> é o seu e-mail?"}])
    at = open_editor(admin, fid)
    at = at.chat_input(key=f"editor_chat_input_{fid}").set_value("orçamento, sou a Lia").run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any(c.startswith("🔌 Chamada REAL ao serviço externo (ai)") for c in captions)
    shown = texts(at)
    assert any(v.startswith("Modelo fake-model · ") and "tokens" in v for v in shown)
    details = next(v for v in shown if "Ferramenta chamada: registrar_dados" in v)
    assert "✔ nome = Lia" in details
    assert "✘ email = lia@inventado.com — recusado: não aparece nas mensagens do contato" in details
    assert "Oi, Lia! Qual é o seu e-mail?" in shown
    assert "Aguardando no nó ia." in shown
    assert funnels.list_funnels(admin)[0]["entered"] == 0


def test_the_ai_steps_form_edits_its_fields_as_lines_and_applies_untouched_as_is(engine, r):
    from engine.core.examples import ai_qualification_funnel

    ws = make_workspace()
    admin = make_actor(ws)
    fid = funnels.create_funnel(admin, "IA", ai_qualification_funnel())
    at = click(open_editor(admin, fid), fid, "ia")
    assert not at.exception
    assert not [w for w in at.text_area if "avançado" in w.label]  # no JSON for the marketer
    [lines] = [w for w in at.text_area if w.label == "Dados a coletar"]
    assert lines.value.splitlines()[0] == "nome | texto | obrigatório | contact.name | o nome do contato"
    at = at.button(key="editor_apply_ia").click().run()
    at = at.button(key="editor_save").click().run()
    assert funnels.get_funnel(admin, fid)["draft"] == ai_qualification_funnel()
    [lines] = [w for w in at.text_area if w.label == "Dados a coletar"]
    lines.input(lines.value + "\ncargo | texto | opcional | vars.cargo | o cargo do contato")
    at = at.button(key="editor_apply_ia").click().run()
    at = at.button(key="editor_save").click().run()
    node = next(n for n in funnels.get_funnel(admin, fid)["draft"]["nodes"] if n["id"] == "ia")
    assert node["data"]["fields"][-1] == {"key": "cargo", "type": "text", "required": False,
                                          "save_to": "vars.cargo", "description": "o cargo do contato"}
