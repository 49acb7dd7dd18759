"""Odoo against a real local XML-RPC server (tests/fake_odoo.py): the client's errors, the hardened parser, the
connection settings and *Testar conexão*, and the lead push (mapping, dedupe, retries with no duplicate)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from tests.factories import make_actor, make_instance, make_workspace
from tests.fake_http import FakeHTTP
from tests.fake_odoo import FakeOdoo
from tests.test_secrets import database_dump
from workbench.base.errors import InvalidInput, PermissionDenied
from workbench.services import odoo
from workbench.services.odoo_client import OdooClient, OdooError
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, AISummary, Contact


@pytest.fixture
def fake():
    server = FakeOdoo().start()
    yield server
    server.stop()


def client(fake: FakeOdoo, **changes) -> OdooClient:
    values = {"url": fake.url, "database": fake.database, "login": fake.login, "api_key": fake.api_key} | changes
    return OdooClient(values["url"], values["database"], values["login"], values["api_key"], timeout=2)


# -- the client ---------------------------------------------------------------------------------------------------


def test_client_logs_in_and_names_each_failure(fake):
    assert client(fake).version()["server_version"] == "17.0+e"
    assert client(fake).authenticate() == fake.uid
    cases = [(client(fake, database="outra"), "database"), (client(fake, api_key="errada"), "auth")]
    for wrong, kind in cases:
        with pytest.raises(OdooError) as err:
            wrong.authenticate()
        assert err.value.kind == kind and not err.value.retryable
    fake.rights["create"] = False
    with pytest.raises(OdooError) as err:
        client(fake).execute("crm.lead", "create", {"name": "x"})
    assert err.value.kind == "access"
    fake.crm_installed = False
    with pytest.raises(OdooError) as err:
        client(fake).execute("crm.lead", "search", [])
    assert err.value.kind == "no_crm"


def test_down_slow_and_unreachable_servers_are_retryable(fake):
    fake.down = True
    with pytest.raises(OdooError) as err:
        client(fake).version()
    assert (err.value.kind, err.value.retryable) == ("unreachable", True)
    fake.down = False
    fake.hold = threading.Event()
    with pytest.raises(OdooError) as err:
        client(fake).version()  # the server holds the answer past the client's timeout
    assert (err.value.kind, err.value.retryable) == ("timeout", True)
    fake.hold.set()
    with pytest.raises(OdooError) as err:
        OdooClient("http://127.0.0.1:9", "db", "u", "k", timeout=2).version()
    assert err.value.kind == "unreachable"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<methodResponse><params><param><value><string>&lol2;</string></value></param></params></methodResponse>"""


def test_hostile_answers_are_refused_by_the_parser():
    server = FakeHTTP().start()
    try:
        for body in (BOMB, b"<methodResponse><params>" + b"<x>" * 10):
            server.script([{"body": body}])
            with pytest.raises(OdooError) as err:
                OdooClient(server.url, "db", "u", "k", timeout=2).version()
            assert err.value.kind == "protocol"
        server.script([{"body": b"", "headers": {"Content-Encoding": "gzip"}}])
        with pytest.raises(OdooError) as err:
            OdooClient(server.url, "db", "u", "k", timeout=2).version()
        assert err.value.kind == "protocol"
    finally:
        server.stop()


# -- the connection settings --------------------------------------------------------------------------------------


def configure(admin, fake: FakeOdoo, **changes) -> None:
    values = {"url": fake.url, "database": fake.database, "login": fake.login, "tags": ["WhatsApp", "bot"]}
    odoo.save_config(admin, values | changes, fake.api_key)


def test_settings_keep_the_key_encrypted_and_testar_conexao_says_what_failed(engine, r, fake):
    admin = make_actor(make_workspace())
    assert odoo.test_connection(admin).problem == "not_configured"
    configure(admin, fake)
    config = odoo.get_config(admin)
    assert (config.settings.database, config.key_hint) == ("empresa", "3456")
    assert fake.api_key not in database_dump()
    report = odoo.test_connection(admin)
    assert (report.ok, report.version) == (True, "17.0+e")
    assert report.choices["team_id"] == [(1, "Vendas"), (2, "Pós-venda")]
    assert odoo.stored_choices(admin) == report.choices  # kept for the form's pickers

    # an empty key keeps the stored one
    odoo.save_config(admin, {"url": fake.url, "database": "outra", "login": fake.login}, "")
    assert odoo.test_connection(admin).problem == "database"
    configure(admin, fake)
    odoo.save_config(admin, {"url": fake.url, "database": fake.database, "login": fake.login}, "chave-errada-000")
    assert odoo.test_connection(admin).problem == "auth"
    configure(admin, fake)
    fake.rights["create"] = False
    assert (odoo.test_connection(admin).problem, odoo.test_connection(admin).detail) == ("access", "create")
    fake.crm_installed = False
    assert odoo.test_connection(admin).problem == "no_crm"
    fake.down = True
    assert odoo.test_connection(admin).problem == "unreachable"


@pytest.mark.parametrize(("values", "key"), [
    ({"url": "ftp://odoo", "database": "d", "login": "l"}, "error.odoo.url"),
    ({"url": "https://odoo.example.com", "database": "", "login": "l"}, "error.odoo.database"),
    ({"url": "https://odoo.example.com", "database": "d", "login": ""}, "error.odoo.login")])
def test_bad_settings_are_refused_clearly(engine, r, values, key):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as err:
        odoo.save_config(admin, values, "k")
    assert err.value.key == key
    with pytest.raises(InvalidInput) as err:
        odoo.save_config(admin, {"url": "https://odoo.example.com", "database": "d", "login": "l"}, "")
    assert err.value.key == "error.odoo.key"  # the first save needs the key
    with pytest.raises(PermissionDenied):
        odoo.save_config(make_actor(admin.workspace_id, "supervisor"), values, "k")


# -- the push -----------------------------------------------------------------------------------------------------


def contact(ws: int, phone: str = "5511987654321") -> int:
    with session_scope() as s:
        row = Contact(workspace_id=ws, instance_id=make_instance(ws), phone=phone, name="Ana")
        s.add(row)
        s.flush()
        return row.id


LEAD = {"title": "Ana — orçamento", "contact_name": "Ana", "email": "ana@empresa.com", "phone": "5511987654321",
        "company": "Empresa", "description": "Quer 3 licenças", "tags": ["quente"], "expected_revenue": 1500}


def activity(ws: int) -> list[tuple[str, dict]]:
    with session_scope() as s:
        return [(e.kind, e.data) for e in s.scalars(select(ActivityEvent).where(ActivityEvent.workspace_id == ws)
                                                    .order_by(ActivityEvent.id))]


def test_a_push_creates_the_lead_with_its_mapping_and_stores_it_on_the_contact(engine, r, fake):
    admin = make_actor(make_workspace())
    configure(admin, fake, team_id=3, user_id=5, stage_id=2)
    cid = contact(admin.workspace_id)
    result = odoo.push_lead(admin.workspace_id, cid, 41, LEAD, final=False)
    assert result["ok"] and result["action"] == "created"
    [lead] = fake.leads()
    assert lead["name"] == "Ana — orçamento" and lead["email_from"] == "ana@empresa.com"
    assert (lead["partner_name"], lead["team_id"], lead["user_id"], lead["stage_id"]) == ("Empresa", 3, 5, 2)
    assert lead["expected_revenue"] == 1500 and lead["description"].startswith("Quer 3 licenças")
    tags = {t["name"] for t in fake.records["crm.tag"].values()}
    assert tags == {"WhatsApp", "bot", "quente"}  # created when missing
    assert [s["name"] for s in fake.records["utm.source"].values()] == ["WhatsApp"]
    link = f"{fake.url}/web#id={lead['id']}&model=crm.lead&view_type=form"
    assert odoo.contact_lead(admin, cid) == (lead["id"], link)
    assert activity(admin.workspace_id) == [("odoo_lead_created", {"source": "odoo", "lead_id": lead["id"],
                                                                   "url": result["url"]})]


def test_the_contacts_ai_summary_goes_at_the_end_of_the_description_when_asked(engine, r, fake):
    admin = make_actor(make_workspace())
    configure(admin, fake)
    cid = contact(admin.workspace_id)
    first = odoo.push_lead(admin.workspace_id, cid, 50, LEAD | {"include_ai_summary": True}, final=False)
    [lead] = fake.leads()  # no summary stored yet: the description as mapped
    assert lead["description"].startswith("Quer 3 licenças") and "Resumo" not in lead["description"]
    assert "include_ai_summary" not in lead
    with session_scope() as s:
        s.add(AISummary(workspace_id=admin.workspace_id, contact_id=cid, text="Ana quer 3 licenças; falta o CNPJ.",
                        model="m"))
    odoo.push_lead(admin.workspace_id, cid, 51, LEAD | {"include_ai_summary": True}, final=False)
    odoo.push_lead(admin.workspace_id, cid, 52, LEAD, final=False)
    assert fake.messages[first["lead_id"]] == [
        "Ana — orçamento\nQuer 3 licenças\n\nResumo da IA:\nAna quer 3 licenças; falta o CNPJ.",
        "Ana — orçamento\nQuer 3 licenças"]


def test_the_next_push_updates_the_open_lead_with_a_note_instead_of_creating(engine, r, fake):
    admin = make_actor(make_workspace())
    configure(admin, fake)
    cid = contact(admin.workspace_id)
    first = odoo.push_lead(admin.workspace_id, cid, 1, LEAD, final=False)
    second = odoo.push_lead(admin.workspace_id, cid, 2, LEAD | {"tags": ["retorno"], "description": "Voltou"},
                            final=False)
    assert (second["action"], second["lead_id"]) == ("updated", first["lead_id"])
    assert fake.creates() == 1
    assert fake.messages[first["lead_id"]] == ["Ana — orçamento\nVoltou"]
    tag_names = {fake.records["crm.tag"][i]["name"] for i in fake.leads()[0]["tag_ids"]}
    assert "retorno" in tag_names and "quente" in tag_names
    # a won lead (probability 100) is not "open": the next push creates a new one
    fake.records["crm.lead"][first["lead_id"]]["probability"] = 100
    assert odoo.push_lead(admin.workspace_id, cid, 3, LEAD, final=False)["action"] == "created"


def test_dedupe_by_phone_then_e_mail_for_a_contact_without_a_stored_lead(engine, r, fake):
    admin = make_actor(make_workspace())
    configure(admin, fake)
    by_phone = client(fake).execute("crm.lead", "create", {"name": "Antigo", "phone": "+55 (11) 98765-4321"})
    by_mail = client(fake).execute("crm.lead", "create", {"name": "Outro", "email_from": "Bia@Empresa.com"})
    result = odoo.push_lead(admin.workspace_id, contact(admin.workspace_id), 5, LEAD, final=False)
    assert (result["action"], result["lead_id"]) == ("updated", by_phone)
    other = contact(admin.workspace_id, "5521900000000")
    result = odoo.push_lead(admin.workspace_id, other, 6, LEAD | {"phone": "5521900000000", "email": "bia@empresa.com"},
                            final=False)
    assert (result["action"], result["lead_id"]) == ("updated", by_mail)
    assert fake.creates() == 2  # only the two made by hand


def test_a_retried_push_never_creates_two_leads(engine, r, fake):
    admin = make_actor(make_workspace())
    configure(admin, fake)
    cid = contact(admin.workspace_id)
    odoo.push_lead(admin.workspace_id, cid, 9, LEAD, final=False)
    with session_scope() as s:  # the try died after Odoo created the lead, before we stored anything
        s.get(Contact, cid).odoo_lead_id = None
    again = odoo.push_lead(admin.workspace_id, cid, 9, LEAD | {"phone": "", "email": ""}, final=False)
    assert again["action"] == "already" and fake.creates() == 1


def test_odoo_down_is_retried_and_the_last_try_records_the_failure(engine, r, fake):
    admin = make_actor(make_workspace())
    configure(admin, fake)
    cid = contact(admin.workspace_id)
    fake.down = True
    with pytest.raises(OdooError) as err:
        odoo.push_lead(admin.workspace_id, cid, 11, LEAD, final=False)
    assert err.value.retryable and activity(admin.workspace_id) == []
    result = odoo.push_lead(admin.workspace_id, cid, 11, LEAD, final=True)
    assert (result["ok"], result["error"]) == (False, "unreachable")
    assert activity(admin.workspace_id) == [("odoo_push_failed", {"source": "odoo", "reason": "unreachable"})]
    fake.down = False
    fake.rights["create"] = False  # not retryable: fails at once, even before the last try
    result = odoo.push_lead(admin.workspace_id, cid, 12, LEAD, final=False)
    assert (result["ok"], result["error"]) == (False, "access") and fake.leads() == []
