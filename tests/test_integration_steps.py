"""The steps "Chamada HTTP" and "Enviar para Odoo" end to end: a contact's message starts the funnel, the drain only
stores the call, the calls pool runs it against a real local server (tests/fake_http.py, tests/fake_odoo.py) and the
run follows ``sucesso`` or ``falha``; plus the nodes' pure parts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.core.definition import validate_definition
from engine.core.examples import ODOO_SPLICES, example_definition
from engine.core.nodes import parse_node
from engine.core.nodes.base import CallOutside, ExecutionContext, SetContactField, SetVariable
from engine.core.nodes.odoo import parse_amount
from engine.core.nodes.webhook import execute as webhook_execute
from engine.core.nodes.webhook import on_result as webhook_on_result
from engine.worker import calls
from tests.fake_http import FakeHTTP
from tests.fake_odoo import FakeOdoo
from tests.test_funnel_runtime import LEAD, bot_texts, say, setup_workspace, the_run
from workbench.base.clock import now
from workbench.services import contact_feed, odoo, runs, secrets
from workbench.store.db import session_scope
from workbench.store.models import Contact, FunnelEvent, OutsideCall

CTX = ExecutionContext(now=datetime(2026, 12, 2, 12, tzinfo=UTC),
                       contact={"name": 'Ana "A" <b>', "phone": "5511987654321"}, variables={"plano": "pro"})


# -- the nodes on their own ---------------------------------------------------------------------------------------


def webhook(**data: Any):
    return parse_node({"id": "h", "type": "webhook", "data": {"url": "https://api.exemplo.com/x"} | data})


def test_the_json_body_renders_each_string_value_so_a_name_cannot_break_it():
    node = webhook(body='{"nome": "{{contact.name}}", "plano": "{{vars.plano}}", "n": 1, "l": ["{{contact.phone}}"]}',
                   query=["origem=whatsapp", "tel={{contact.phone}}"], headers=["X-Plano: {{vars.plano}}"],
                   auth="bearer", auth_secret="token", mapping=["data.id -> vars.pedido",
                                                                "plan -> contact.custom_data.plano"])
    result = webhook_execute(node, CTX)
    [call] = result.actions
    assert isinstance(call, CallOutside) and call.service == "http" and result.wait.kind == "call"
    request = call.request
    assert request["body"] == {"nome": 'Ana "A" <b>', "plano": "pro", "n": 1, "l": ["5511987654321"]}
    assert request["query"] == [["origem", "whatsapp"], ["tel", "5511987654321"]]
    assert request["headers"] == [["X-Plano", "pro"]]
    assert request["auth"] == {"kind": "bearer", "secret": "token", "username": None, "header": None}
    assert "token" not in json.dumps(request["headers"])  # only the secret's name travels
    assert request["mapping"] == [{"path": "data.id", "target": "vars.pedido"},
                                  {"path": "plan", "target": "contact.custom_data.plano"}]


def test_on_result_stores_mapped_values_and_picks_the_output():
    node = webhook()
    done = webhook_on_result(node, CTX, {"ok": True, "status": 201, "values": {"vars.pedido": 9,
                                                                             "contact.custom_data.plano": "pro"},
                                         "missing": ["x.y"]})
    assert done.output == "sucesso" and done.actions == (SetVariable("pedido", 9),
                                                         SetContactField("custom_data.plano", "pro"))
    assert done.log == ("A resposta não tem x.y",)
    failed = webhook_on_result(node, CTX, {"ok": False, "status": 404, "error": "HTTP 404"})
    assert (failed.output, failed.data) == ("falha", {"status": 404, "reason": "HTTP 404"})


@pytest.mark.parametrize(("data", "code"), [
    ({"headers": ["sem dois pontos"]}, "header_line"), ({"query": ["=x"]}, "query_line"),
    ({"body": "{nao é json"}, "body_json"), ({"auth": "bearer"}, "auth_secret_missing"),
    ({"auth": "header", "auth_secret": "k"}, "auth_header_missing"), ({"mapping": ["a -> contact.phone"]},
                                                                     "target_invalid"),
    ({"timeout_s": 61}, "less_than_equal"), ({"body_kind": "form", "body": "sem igual"}, "form_line")])
def test_the_webhook_schema_refuses_bad_configuration(data, code):
    from pydantic import ValidationError
    with pytest.raises(ValidationError) as err:
        webhook(**data)
    assert code in {e["type"] for e in err.value.errors()}


def test_amounts_are_read_the_brazilian_way_too():
    assert [parse_amount(x) for x in ("1.500,50", "1500.50", "R$ 1.500", "", "abc", "1.000.000")] == [
        1500.5, 1500.5, 1500.0, None, None, 1000000.0]


# -- Chamada HTTP in a funnel -------------------------------------------------------------------------------------


@pytest.fixture
def server(settings_env):
    settings_env(WORKBENCH_OUTBOUND_ALLOW="127.0.0.1/32")
    fake = FakeHTTP().start()
    yield fake
    fake.stop()


def http_funnel(url: str, **data: Any):
    def build() -> dict[str, Any]:
        return {"nodes": [
            {"id": "inicio", "type": "trigger", "data": {"kind": "keyword", "mode": "contains", "words": ["pedido"]}},
            {"id": "chama", "type": "webhook", "data": {"url": url, "body": '{"nome": "{{contact.name}}"}',
                                                        "mapping": ["data.id -> vars.pedido"]} | data},
            {"id": "ok", "type": "send_message", "data": {"text": "Pedido {{vars.pedido}} registrado"}},
            {"id": "erro", "type": "send_message", "data": {"text": "Não deu certo"}},
        ], "edges": [
            {"id": "e1", "source": "inicio", "target": "chama", "label": "next"},
            {"id": "e2", "source": "chama", "target": "ok", "label": "sucesso"},
            {"id": "e3", "source": "chama", "target": "erro", "label": "falha"},
        ]}
    return build


def step_event(node_id: str) -> dict[str, Any]:
    with session_scope() as s:
        return s.scalars(select(FunnelEvent.data).where(FunnelEvent.node_id == node_id)
                         .order_by(FunnelEvent.id.desc())).first()


def the_call() -> OutsideCall:
    with session_scope() as s:
        return s.scalars(select(OutsideCall).order_by(OutsideCall.id.desc())).first()


def run_retries(r) -> dict[str, int]:
    """Make every pending try due now and run the pool until nothing is left (no waiting for the backoff)."""
    totals: dict[str, int] = {}
    for _ in range(10):
        with session_scope() as s:
            pending = list(s.scalars(select(OutsideCall.id).where(OutsideCall.status == "pending")))
            s.execute(update(OutsideCall).where(OutsideCall.status == "pending").values(due_at=now()))
        if not pending:
            break
        runs.enqueue_calls(r, pending)
        for key, n in calls.run_due(r).items():
            totals[key] = totals.get(key, 0) + n
    return totals


def test_a_webhook_step_calls_out_of_the_drain_and_maps_the_answer(engine, r, server):
    server.script([{"status": 201, "json": {"data": {"id": "A-77"}}}])
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel(server.url + "/pedidos")))
    say(inst, "quero fazer um pedido")
    assert server.requests == [] and bot_texts() == [], "the drain only stored the call"
    assert calls.run_due(r) == {"applied": 1}
    [got] = server.requests
    assert (got.method, json.loads(got.body)) == ("POST", {"nome": "Maria"})  # the inbound push name
    assert got.headers["idempotency-key"] == f"wb-call-{the_call().id}"
    assert bot_texts() == ["Pedido A-77 registrado"]
    assert the_run().status == "completed" and the_run().variables["pedido"] == "A-77"
    event = step_event("chama")
    assert event["status"] == 201 and event["call"]["service"] == "http" and event["call"]["outcome"] == "ok"


def test_retries_keep_one_idempotency_key_and_signatures_verify(engine, r, server):
    server.script([{"status": 503}, {"status": 429}, {"status": 200, "json": {"data": {"id": 5}}}])
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel(server.url, sign_secret="assinatura", auth="bearer",
                                                                auth_secret="token")))
    signing = secrets.generate_signing_secret(admin, "assinatura")
    secrets.set_secret(admin, "token", "tok-abcdefghijkl")
    say(inst, "pedido")
    assert run_retries(r) == {"retry": 2, "applied": 1}
    assert len(server.requests) == 3 and the_call().attempts == 3
    key = base64.b64decode(signing.removeprefix("whsec_"))
    for got in server.requests:
        assert got.headers["idempotency-key"] == got.headers["webhook-id"] == f"wb-call-{the_call().id}"
        assert got.headers["authorization"] == "Bearer tok-abcdefghijkl"
        signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
        assert got.headers["webhook-signature"] == "v1," + base64.b64encode(
            hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert bot_texts() == ["Pedido 5 registrado"]
    # no secret in the stored request, result or events
    stored = json.dumps([the_call().request, the_call().result, step_event("chama")])
    assert "tok-abcdefghijkl" not in stored and signing not in stored


def test_a_4xx_takes_falha_at_once_with_the_status_in_the_events(engine, r, server):
    server.script([{"status": 404}])
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel(server.url)))
    say(inst, "pedido")
    assert calls.run_due(r) == {"applied": 1}
    assert bot_texts() == ["Não deu certo"] and len(server.requests) == 1
    event = step_event("chama")
    assert (event["status"], event["reason"]) == (404, "HTTP 404")


def test_5xx_until_the_last_try_takes_falha(engine, r, server):
    server.script([{"status": 500}])
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel(server.url)))
    say(inst, "pedido")
    assert run_retries(r) == {"retry": 2, "applied": 1}
    assert bot_texts() == ["Não deu certo"] and len(server.requests) == 3
    assert step_event("chama")["reason"] == "HTTP 500"


def test_a_private_address_is_refused_without_a_single_request(engine, r, server):
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel("http://10.0.0.1/x")))
    say(inst, "pedido")
    assert calls.run_due(r) == {"applied": 1}
    assert bot_texts() == ["Não deu certo"] and step_event("chama")["reason"] == "ssrf"


# -- Enviar para Odoo in a funnel ---------------------------------------------------------------------------------


@pytest.fixture
def fake_odoo():
    fake = FakeOdoo().start()
    yield fake
    fake.stop()


def odoo_funnel() -> dict[str, Any]:
    return {"nodes": [
        {"id": "inicio", "type": "trigger", "data": {"kind": "keyword", "mode": "contains", "words": ["orçamento"]}},
        {"id": "crm", "type": "odoo", "data": {"title": "{{contact.name}} — orçamento", "tags": ["quente"],
                                               "description": "{{history}}", "expected_revenue": "1.500,00",
                                               "save_lead_to": "vars.lead"}},
        {"id": "ok", "type": "send_message", "data": {"text": "Registrado (nº {{vars.lead}})"}},
        {"id": "erro", "type": "send_message", "data": {"text": "Vamos te chamar em breve"}},
    ], "edges": [
        {"id": "e1", "source": "inicio", "target": "crm", "label": "next"},
        {"id": "e2", "source": "crm", "target": "ok", "label": "sucesso"},
        {"id": "e3", "source": "crm", "target": "erro", "label": "falha"},
    ]}


def configure(admin, fake: FakeOdoo) -> None:
    odoo.save_config(admin, {"url": fake.url, "database": fake.database, "login": fake.login}, fake.api_key)


def test_an_odoo_step_creates_the_lead_then_updates_it_and_shows_it_on_the_contact(engine, r, fake_odoo):
    ws, inst, admin, _ = setup_workspace(("CRM", odoo_funnel))
    configure(admin, fake_odoo)
    say(inst, "quero um orçamento")
    assert fake_odoo.calls == [] and bot_texts() == []
    assert calls.run_due(r) == {"applied": 1}
    [lead] = fake_odoo.leads()
    assert bot_texts() == [f"Registrado (nº {lead['id']})"]
    assert lead["phone"] == LEAD and lead["expected_revenue"] == 1500.0
    assert "quero um orçamento" in lead["description"]
    with session_scope() as s:
        contact = s.scalars(select(Contact).where(Contact.phone == LEAD)).one()
        assert contact.odoo_lead_id == lead["id"]
    assert step_event("crm")["lead_id"] == lead["id"] and step_event("crm")["call"]["service"] == "odoo"
    items = contact_feed.feed(admin, contact.id)["items"]
    lines = [contact_feed.describe(i) for i in items if i["source"] == "odoo"]
    assert lines == [f"Oportunidade criada no Odoo (nº {lead['id']})"]

    say(inst, "outro orçamento")
    assert calls.run_due(r) == {"applied": 1}
    assert fake_odoo.creates() == 1 and len(fake_odoo.messages[lead["id"]]) == 1


def test_odoo_down_is_retried_without_holding_other_contacts_and_ends_in_falha(engine, r, fake_odoo):
    ws, inst, admin, _ = setup_workspace(("CRM", odoo_funnel), ("Eco", lambda: {"nodes": [
        {"id": "t", "type": "trigger", "data": {"kind": "keyword", "mode": "contains", "words": ["oi"]}},
        {"id": "m", "type": "send_message", "data": {"text": "Olá!"}}], "edges": [
        {"id": "e", "source": "t", "target": "m", "label": "next"}]}))
    configure(admin, fake_odoo)
    fake_odoo.down = True
    say(inst, "orçamento")
    say(inst, "oi", phone="5521900000002")  # another contact is answered while the push waits
    assert bot_texts("5521900000002") == ["Olá!"]
    assert run_retries(r) == {"retry": odoo.MAX_ATTEMPTS - 1, "applied": 1}
    assert bot_texts() == ["Vamos te chamar em breve"] and fake_odoo.leads() == []
    assert step_event("crm")["reason"] == "unreachable"
    with session_scope() as s:
        contact = s.scalars(select(Contact).where(Contact.phone == LEAD)).one()
    items = contact_feed.feed(admin, contact.id)["items"]
    assert [contact_feed.describe(i) for i in items if i["source"] == "odoo"] == [
        "Envio para o Odoo falhou: o servidor do Odoo não respondeu (fora do ar ou endereço errado)"]


@pytest.mark.parametrize("key", sorted(ODOO_SPLICES))
def test_the_sales_examples_take_an_optional_odoo_step_and_stay_valid(key):
    plain, with_odoo = example_definition(key), example_definition(key, odoo=True)
    assert "enviar_odoo" not in {n["id"] for n in plain["nodes"]}
    assert validate_definition(with_odoo).is_valid, validate_definition(with_odoo).errors
    after, before = ODOO_SPLICES[key]
    edges = {(e["source"], e["label"], e["target"]) for e in with_odoo["edges"]}
    assert {(after, "next", "enviar_odoo"), ("enviar_odoo", "sucesso", before),
            ("enviar_odoo", "falha", before)} <= edges
    assert (after, "next", before) not in edges


def test_the_scheduling_example_with_odoo_pushes_the_lead_then_routes(engine, r, fake_odoo):
    ws, inst, admin, _ = setup_workspace(("Agendamento", lambda: example_definition("agendamento", odoo=True)))
    configure(admin, fake_odoo)
    for text in ("quero falar com vendas", "Carla", "carla@exemplo.com.br", "Amanhã às 10h"):
        say(inst, text)
    assert not bot_texts()[-1].startswith("Tudo certo!"), "the push runs before the route"
    assert calls.run_due(r) == {"applied": 1}
    assert bot_texts()[-1].startswith("Tudo certo!")
    [lead] = fake_odoo.leads()
    assert lead["name"] == "Carla — WhatsApp" and "Amanhã às 10h" in lead["description"]


def test_the_test_chat_holds_the_call_and_follows_its_answer():
    from engine.core import preview
    draft = http_funnel("https://api.exemplo.com/x")()
    state = preview.start(draft, "pedido")
    assert (state.status, state.wait_kind) == ("waiting", "call")
    assert state.pending_call["service"] == "http" and state.pending_call["request"]["method"] == "POST"
    # a failed answer (Odoo, which has no test-chat preview, always gives one) follows falha
    state = preview.deliver(draft, state, {"ok": False, "kind": "config", "error": "no preview for odoo"})
    assert [e.text for e in state.entries if e.role == "bot"] == ["Não deu certo"]


def test_the_test_chat_sends_an_http_call_for_real_once_and_odoo_never(engine, r, server, fake_odoo):
    from engine.core import preview
    from workbench.services import outside_calls

    server.script([{"json": {"data": {"id": 8}}}])
    ws, inst, admin, _ = setup_workspace()
    draft = http_funnel(server.url)()
    state = preview.start(draft, "pedido")
    result = outside_calls.preview_call(admin, "http", state.pending_call["request"], state.history())
    state = preview.deliver(draft, state, result)
    assert [e.text for e in state.entries if e.role == "bot"] == ["Pedido 8 registrado"]
    [got] = server.requests
    assert got.headers["idempotency-key"].startswith("wb-test-")
    configure(admin, fake_odoo)
    state = preview.start(odoo_funnel(), "orçamento")
    result = outside_calls.preview_call(admin, "odoo", state.pending_call["request"], state.history())
    assert result["ok"] is False and fake_odoo.calls == [], "the test chat never creates a lead"


def test_a_reply_while_the_call_runs_keeps_the_call(engine, r, server):
    server.script([{"status": 200, "json": {"data": {"id": 1}}}])
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel(server.url)))
    say(inst, "pedido")
    token = the_run().wait_token
    say(inst, "alô?")
    assert the_run().wait_token == token and the_run().status == "waiting"
    assert calls.run_due(r) == {"applied": 1}
    assert bot_texts() == ["Pedido 1 registrado"]


def test_mapped_values_are_typed_like_any_other_write(engine, r, server):
    from workbench.services import contact_fields

    server.script([{"json": {"data": {"id": 3, "valor": "1.234,50", "nascimento": "não sei"}}}])
    ws, inst, admin, _ = setup_workspace(("Pedido", http_funnel(server.url, mapping=[
        "data.valor -> contact.custom_data.valor", "data.nascimento -> contact.custom_data.nascimento",
        "data.id -> vars.pedido"])))
    contact_fields.create_field(admin, "valor", "Valor", "number")
    contact_fields.create_field(admin, "nascimento", "Nascimento", "date")
    say(inst, "pedido")
    assert calls.run_due(r) == {"applied": 1}
    with session_scope() as s:
        contact = s.scalars(select(Contact).where(Contact.phone == LEAD)).one()
    assert contact.custom_data == {"valor": 1234.5}  # the date that is not one is left out, and said so
    assert any("nascimento" in line for line in step_event("chama")["log"])
    assert bot_texts() == ["Pedido 3 registrado"]
