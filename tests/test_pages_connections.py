"""Conexões page: live state labels, QR codes, adding and managing numbers."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from connector.contracts import CONTROL_LIST, INSTANCES_HASH, STATUS_HASH, now_ms
from tests.factories import make_actor, make_instance, make_workspace
from tests.test_pages_app import new_app
from workbench import instances


def open_page(actor) -> AppTest:
    at = new_app()
    at.session_state["auth_actor"] = actor  # logged in (the login itself is tested in test_pages_app)
    at.run()
    return at.switch_page("pages/connections.py").run()


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def test_number_awaiting_qr_shows_label_and_qr_image(engine, r):
    ws = make_workspace()
    inst = make_instance(ws, "Comercial")
    r.hset(STATUS_HASH.format(inst), mapping={
        "state": "awaiting_qr", "qr": "sandbox:1:abc", "qr_expires_at": now_ms() + 45_000, "heartbeat": now_ms()})
    at = open_page(make_actor(ws))
    assert not at.exception
    assert badges(at) == [":orange-badge[Aguardando leitura do QR]"]
    assert "Comercial" in [t.value for t in at.text]
    assert len(at.get("image")) == 1
    assert any(c.value.startswith("O código expira em 4") for c in at.caption)


def test_connected_number_shows_phone_push_name_and_heartbeat(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    r.hset(STATUS_HASH.format(inst), mapping={
        "state": "connected", "phone": "5511955550001", "push_name": "Loja <b>X</b>", "heartbeat": now_ms() - 3000,
        "restarts": 2})
    at = open_page(make_actor(ws))
    assert badges(at) == [":green-badge[Conectado]"]
    texts = [t.value for t in at.text]
    assert {"5511955550001", "Loja <b>X</b>", "2"} <= set(texts)
    assert any(t.startswith("há ") and t.endswith(" s") for t in texts)
    assert not at.get("image")


def test_stale_heartbeat_is_disconnected(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "connected", "heartbeat": now_ms() - 60_000,
                                             "reason": "network_unreachable"})
    at = open_page(make_actor(ws))
    assert badges(at) == [":red-badge[Desconectado]"]
    assert "Rede indisponível; tentando de novo" in [c.value for c in at.caption]


def test_adding_a_number(engine, r):
    ws = make_workspace()
    actor = make_actor(ws, role="supervisor")
    at = open_page(actor)
    assert any("Nenhum número cadastrado" in i.value for i in at.info)
    at.text_input(key="conn_new_name").input("Vendas SP")
    at.button(key="conn_create").click().run()
    assert not at.exception
    [inst] = instances.list_instances(actor)
    assert (inst["name"], inst["transport"]) == ("Vendas SP", "sandbox")
    assert json.loads(r.hget(INSTANCES_HASH, str(inst["id"]))) == {"transport": "sandbox", "desired": "running"}
    assert [s.value for s in at.success] == ["Número adicionado. O QR code aparece aqui em instantes."]
    assert "Vendas SP" in [t.value for t in at.text]


def test_empty_name_is_refused_and_neonize_is_disabled(engine, r):
    ws = make_workspace()
    actor = make_actor(ws)
    at = open_page(actor)
    at.button(key="conn_create").click().run()
    assert [e.value for e in at.error] == ["Dê um nome ao número (até 120 caracteres)."]
    at.radio(key="conn_new_transport").set_value("neonize").run()
    assert at.button(key="conn_create").disabled
    assert instances.list_instances(actor) == []


def test_stop_start_and_remove_with_confirmation(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    actor = make_actor(ws)
    at = open_page(actor)
    at.button(key=f"conn_stop_{inst}").click().run()
    assert instances.list_instances(actor)[0]["desired"] == "stopped"
    assert badges(at) == [":gray-badge[Parado]"]
    at.button(key=f"conn_start_{inst}").click().run()
    assert instances.list_instances(actor)[0]["desired"] == "running"

    at.button(key=f"conn_logout_{inst}").click().run()
    assert at.warning[0].value.startswith("Desconectar este número")
    at.button(key=f"conn_no_{inst}").click().run()
    assert r.llen(CONTROL_LIST.format(inst)) == 0  # cancelled: nothing sent
    at.button(key=f"conn_logout_{inst}").click().run()
    at.button(key=f"conn_yes_logout_{inst}").click().run()
    assert json.loads(r.lpop(CONTROL_LIST.format(inst)))["action"] == "logout"

    at.button(key=f"conn_remove_{inst}").click().run()
    assert instances.list_instances(actor)  # not before the confirmation
    at.button(key=f"conn_yes_remove_{inst}").click().run()
    assert not at.exception
    assert instances.list_instances(actor) == []
    assert [s.value for s in at.success] == ["Número removido."]


def test_agents_see_numbers_without_controls(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    at = open_page(make_actor(ws, role="agent"))
    assert not at.exception
    assert not at.expander  # no "Adicionar número"
    assert not [b for b in at.button if b.key and b.key.startswith("conn_")]
    assert "Desconectado" in badges(at)[0] and inst
