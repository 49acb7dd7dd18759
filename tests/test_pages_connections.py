"""Conexões page: live state labels, QR codes, adding and managing numbers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from streamlit.testing.v1 import AppTest

from connector.contracts import CONTROL_LIST, INSTANCES_HASH, STATUS_HASH, now_ms
from tests.factories import make_actor, make_instance, make_workspace
from tests.test_pages_app import signed_in_app
from workbench.base.i18n import DISPLAY_TZ, reason_label
from workbench.services import instances


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)  # logged in (the login itself is tested in test_pages_app)
    at.run()
    return at.switch_page("pages/connections.py").run()


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def real_number(ws: int, name: str = "Vendas") -> int:
    """A number on the neonize transport (the factory makes sandbox ones)."""
    return instances.create_instance(make_actor(ws), name, "neonize")


def ctl(r, inst: int) -> list[dict]:
    return [json.loads(raw) for raw in r.lrange(CONTROL_LIST.format(inst), 0, -1)]


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


def test_empty_name_is_refused(engine, r):
    ws = make_workspace()
    actor = make_actor(ws)
    at = open_page(actor)
    at.button(key="conn_create").click().run()
    assert [e.value for e in at.error] == ["Dê um nome ao número (até 120 caracteres)."]
    assert instances.list_instances(actor) == []


def test_adding_a_real_whatsapp_number(engine, r):
    ws = make_workspace()
    actor = make_actor(ws)
    at = open_page(actor)
    at.text_input(key="conn_new_name").input("Comercial SP")
    at.radio(key="conn_new_transport").set_value("neonize").run()
    assert not at.button(key="conn_create").disabled
    assert not [i for i in at.info if "não pode" in i.value]  # the old "cannot be created here" note is gone
    assert any(c.startswith("Conecte pelo QR code ou por um código de telefone") for c in captions(at))
    at.button(key="conn_create").click().run()
    assert not at.exception
    [inst] = instances.list_instances(actor)
    assert (inst["name"], inst["transport"]) == ("Comercial SP", "neonize")
    assert json.loads(r.hget(INSTANCES_HASH, str(inst["id"]))) == {"transport": "neonize", "desired": "running"}
    assert "Conexão: WhatsApp de verdade (neonize)" in captions(at)


def test_real_number_pairs_with_a_phone_code(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    key = STATUS_HASH.format(inst)
    r.hset(key, mapping={"state": "awaiting_qr", "qr": "2@abc,def,ghi", "qr_expires_at": now_ms() + 50_000,
                         "heartbeat": now_ms()})
    at = open_page(make_actor(ws, role="supervisor"))
    assert len(at.get("image")) == 1
    assert any(c.startswith("O código expira em ") and "2 minutos" in c for c in captions(at))
    assert "Conectar com código de telefone" in [e.label for e in at.expander]
    assert f"conn_restart_pairing_{inst}" not in [b.key for b in at.button]  # QR codes still coming

    at.text_input(key=f"conn_pair_phone_{inst}").input("12 34").run()
    at.button(key=f"conn_pair_{inst}").click().run()
    assert [e.value for e in at.error] == ["Telefone inválido: informe o número com DDI e DDD (10 a 15 dígitos), "
                                           "por exemplo +55 11 98765-4321."]
    assert ctl(r, inst) == []

    at.text_input(key=f"conn_pair_phone_{inst}").input("+55 (11) 98765-4321").run()
    at.button(key=f"conn_pair_{inst}").click().run()
    assert not at.exception
    assert ctl(r, inst) == [{"action": "pair_phone", "phone": "5511987654321"}]
    assert [s.value for s in at.success] == ["Pedido enviado. O código aparece aqui em instantes."]

    # what the connector writes once WhatsApp answered (the relay drops the QR code in "pairing")
    r.hdel(key, "qr", "qr_expires_at")
    r.hset(key, mapping={"state": "pairing", "reason": "pair_code", "pair_code": "K7QX-2MZP",
                         "pair_code_expires_at": now_ms() + 90_000, "heartbeat": now_ms()})
    at.run()
    assert badges(at) == [":orange-badge[Aguardando código de pareamento]"]
    assert [(m.label, m.value) for m in at.metric] == [("Digite este código no celular", "K7QX-2MZP")]
    assert not at.get("image")
    assert any(c.startswith("O código vale por mais 8") for c in captions(at))
    assert ("No celular, abra o WhatsApp › Aparelhos conectados › Conectar um aparelho › Conectar com número de "
            "telefone e digite o código.") in captions(at)
    # a wrong phone or an expired code: the form is still there for a new request
    assert "Conectar com código de telefone" in [e.label for e in at.expander]

    r.hset(key, "pair_code_expires_at", now_ms() - 1000)
    at.run()
    assert any(c.startswith("O código expirou.") for c in captions(at))


def test_pairing_code_of_an_unexpected_shape_is_shown_literally(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "pairing", "pair_code": "**AB**", "heartbeat": now_ms(),
                                             "pair_code_expires_at": "soon"})
    at = open_page(make_actor(ws))
    assert not at.exception and not at.metric
    assert not [c for c in captions(at) if c.startswith("O código")]  # no countdown from a broken deadline
    assert "**AB**" in [t.value for t in at.text]


def test_expired_qr_series_offers_a_new_qr_code(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "awaiting_qr", "reason": "qr_expired", "heartbeat": now_ms()})
    at = open_page(make_actor(ws))
    assert badges(at) == [":orange-badge[Aguardando leitura do QR]"]
    assert not at.get("image")
    assert ("Os QR codes expiraram sem ninguém ler. Gere um novo QR code para tentar de novo") in captions(at)
    assert not [c for c in captions(at) if "sozinho" in c or "em instantes" in c]
    button = at.button(key=f"conn_restart_pairing_{inst}")
    assert button.label == "Gerar novo QR code"
    button.click().run()
    assert not at.exception
    assert ctl(r, inst) == [{"action": "restart_pairing"}]
    assert [s.value for s in at.success] == ["Pedido enviado. Um novo QR code aparece aqui em instantes."]


def test_sandbox_card_has_no_real_pairing_controls(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "awaiting_qr", "reason": "qr_expired", "heartbeat": now_ms()})
    at = open_page(make_actor(ws))
    assert [e.label for e in at.expander] == ["Adicionar número"]
    assert f"conn_restart_pairing_{inst}" not in [b.key for b in at.button]
    # the sandbox's own pairing code stays a small detail, as before
    r.hset(STATUS_HASH.format(inst), mapping={"state": "pairing", "reason": "pair_code", "pair_code": "ABCD1234"})
    at.run()
    assert not at.metric and "ABCD1234" in [t.value for t in at.text]


def test_restart_pairing_on_a_number_removed_meanwhile(engine, r):
    ws = make_workspace()
    actor = make_actor(ws)
    inst = real_number(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "awaiting_qr", "reason": "qr_expired", "heartbeat": now_ms()})
    at = open_page(actor)
    instances.remove_instance(make_actor(ws), inst)  # by someone else, in another tab
    r.delete(CONTROL_LIST.format(inst))
    at.button(key=f"conn_restart_pairing_{inst}").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Número não encontrado."]
    assert ctl(r, inst) == []


def test_agents_do_not_get_pairing_controls(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "awaiting_qr", "reason": "qr_expired", "heartbeat": now_ms()})
    at = open_page(make_actor(ws, role="agent"))
    assert not at.expander
    assert not [b for b in at.button if b.key and b.key.startswith("conn_")]
    assert "Os QR codes expiraram sem ninguém ler. Gere um novo QR code para tentar de novo" in captions(at)


def test_temporary_ban_shows_until_when_in_sao_paulo_time(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    until = (datetime.now(DISPLAY_TZ) + timedelta(days=2)).replace(hour=14, minute=30, second=0, microsecond=0)
    r.hset(STATUS_HASH.format(inst), mapping={
        "state": "banned", "reason": f"temporary_ban:sent_too_many_same_message:until={int(until.timestamp() * 1000)}",
        "heartbeat": now_ms()})
    at = open_page(make_actor(ws))
    assert badges(at) == [":red-badge[Banido temporariamente]"]
    fmt = "%d/%m %H:%M" if until.year == datetime.now(DISPLAY_TZ).year else "%d/%m/%Y %H:%M"
    [label] = [c for c in captions(at) if c.startswith("Banido temporariamente pelo WhatsApp")]
    assert label.startswith(f"Banido temporariamente pelo WhatsApp até {until.strftime(fmt)}. Motivo: a mesma "
                            "mensagem enviada para muita gente.")
    assert [e.label for e in at.expander] == ["Adicionar número"]  # no pairing while banned


def test_unknown_reason_codes_stay_literal(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "logged_out", "reason": "42", "heartbeat": now_ms()})
    at = open_page(make_actor(ws))
    assert badges(at) == [":red-badge[Desconectado do WhatsApp]"]
    assert "42" in [t.value for t in at.text]


def test_reason_labels_of_the_real_transport():
    now = datetime(2026, 11, 20, 9, 0, tzinfo=DISPLAY_TZ)
    until = int(datetime(2026, 11, 25, 14, 30, tzinfo=DISPLAY_TZ).timestamp() * 1000)
    assert reason_label(f"temporary_ban:blocked_by_users:until={until}", now=now) == (
        "Banido temporariamente pelo WhatsApp até 25/11 14:30. Motivo: muitas pessoas bloquearam ou denunciaram o "
        "número. Depois desse horário, clique em Reconectar e vá com calma nos envios")
    assert reason_label(f"temporary_ban:99:until={until}", now=now).startswith(
        "Banido temporariamente pelo WhatsApp até 25/11 14:30. Motivo: código 99.")
    assert reason_label(f"temporary_ban:broadcast_list:until={until}", now=now.replace(year=2025)).startswith(
        "Banido temporariamente pelo WhatsApp até 25/11/2026 14:30.")
    assert reason_label(f"temporary_ban:broadcast_list:until={until}", now=now.replace(month=12)) == (
        "O banimento temporário do WhatsApp terminou em 25/11 14:30. Clique em Reconectar para voltar")
    assert reason_label("temporary_ban:broadcast_list:until=soon").startswith(
        "Banido temporariamente pelo WhatsApp. Motivo: uso de lista de transmissão.")
    assert reason_label("main_device_gone") == (
        "O WhatsApp desconectou este aparelho (o WhatsApp do celular foi apagado, reinstalado ou trocado de "
        "aparelho). Clique em Reconectar e leia um novo QR code para voltar")
    assert reason_label("connect_failure:service_unavailable") == (
        "O WhatsApp recusou a conexão (WhatsApp fora do ar no momento); o conector será reiniciado")
    assert reason_label("connect_failure:77") == "O WhatsApp recusou a conexão (código 77); o conector será reiniciado"
    assert reason_label("stream_replaced").startswith("Esta sessão foi aberta em outro computador")
    assert reason_label("client_outdated").startswith("O WhatsApp passou a exigir uma versão mais nova")
    # every code the neonize transport reports has a label
    for code in ("resuming", "new_session", "connect_error", "client_error", "qr_expired", "pair_phone_invalid",
                 "pair_phone_failed", "pair_code", "paired", "pair_error", "disconnected", "keepalive_timeout",
                 "requested", "logout", "transport_error", "generic", "logged_out", "temp_banned", "unknown_logout",
                 "bad_user_agent", "internal_server_error", "experimental", "service_unavailable"):
        assert reason_label(code), code
    for code in ("42", "connect_failure", "temporary_ban", "exit", "code"):
        assert reason_label(code) is None, code


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


def test_agents_see_no_qr_code_nor_pairing_code(engine, r):
    ws = make_workspace()
    inst = real_number(ws)
    r.hset(STATUS_HASH.format(inst), mapping={"state": "awaiting_qr", "qr": "2@qr", "pair_code": "ABCD-EFGH",
                                              "heartbeat": now_ms()})
    at = open_page(make_actor(ws, role="agent"))
    assert not at.exception
    assert badges(at) == [":orange-badge[Aguardando leitura do QR]"]
    assert not at.get("image") and not at.metric
    assert "ABCD-EFGH" not in [t.value for t in at.text]
