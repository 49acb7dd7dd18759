"""Typed contact fields: coercion of every type, definitions with roles and workspace isolation, the inbox
panel's writes and funnels' writes (a bad value keeps the old one and the run's log says why)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from engine.core import preview
from engine.core.nodes.base import ExecutionContext
from engine.core.nodes.condition import Rule, evaluate_rule
from tests.factories import (
    inbound,
    inbox_with_one_conversation,
    make_actor,
    make_instance,
    make_workspace,
    publish,
    run_jobs,
)
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import contact_fields, contacts, conversations, funnels, runs
from workbench.services.contact_fields import FieldDef, coerce
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, FunnelEvent

PLANO = FieldDef(1, "plano", "Plano", "choice", ("Ouro", "Prata"))


# -- coercion -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, raw, stored", [
    ("text", "  Rua das Flores, 10 ", "Rua das Flores, 10"),
    ("text", 42, "42"),
    ("number", "1.234,56", 1234.56),
    ("number", "1234.56", 1234.56),
    ("number", "R$ 10", 10),
    ("number", "-3", -3),
    ("number", 2.0, 2),
    ("number", "1,5", 1.5),
    ("date", "31/12/2026", "2026-12-31"),
    ("date", "2026-12-31", "2026-12-31"),
    ("date", date(2026, 1, 2), "2026-01-02"),
    ("date", datetime(2026, 1, 2, 15, 30), "2026-01-02"),
    ("boolean", "Sim", True),
    ("boolean", "não", False),
    ("boolean", "TRUE", True),
    ("boolean", "0", False),
    ("boolean", False, False),
    ("email", " Ana.Souza@Exemplo.COM.br ", "ana.souza@exemplo.com.br"),
    ("phone", "(11) 98765-4321", "5511987654321"),
    ("phone", "+55 11 98765-4321", "5511987654321"),
    ("phone", "5511987654321", "5511987654321"),
    ("phone", "+1 415 555 2671", "14155552671"),
    ("url", "https://exemplo.com.br/pagina?x=1", "https://exemplo.com.br/pagina?x=1"),
    ("url", "http://localhost:8080", "http://localhost:8080"),
    (PLANO, "ouro", "Ouro"),
    (PLANO, " PRATA ", "Prata"),
    ("number", "", None),
    ("date", "   ", None),
    (PLANO, None, None),
])
def test_valid_values_are_stored_normalised(field, raw, stored):
    value = coerce(field, raw)
    assert value == stored and type(value) is type(stored)


@pytest.mark.parametrize("field, raw, message", [
    ("number", "doze", "O campo Número aceita só números, como 1.234,56 ou 1234.56."),
    ("number", True, "O campo Número aceita só números, como 1.234,56 ou 1234.56."),
    ("number", "1" * 20, "O campo Número aceita só números, como 1.234,56 ou 1234.56."),
    ("number", float("nan"), "O campo Número aceita só números, como 1.234,56 ou 1234.56."),
    ("date", "31/02/2026", "O campo Data aceita só datas, como 31/12/2026 ou 2026-12-31."),
    ("date", "amanhã de manhã", "O campo Data aceita só datas, como 31/12/2026 ou 2026-12-31."),
    ("boolean", "talvez", "O campo Sim/não aceita só sim ou não."),
    ("email", "ana arroba exemplo", "O campo E-mail precisa de um e-mail válido, como nome@empresa.com.br."),
    ("phone", "98765-4321", "O campo Telefone precisa de um telefone válido com DDD, como (11) 98765-4321 ou "
                            "+55 11 98765-4321."),
    ("phone", "ligar 11 98765-4321", "O campo Telefone precisa de um telefone válido com DDD, como (11) 98765-4321 "
                                     "ou +55 11 98765-4321."),
    ("url", "javascript:alert(1)", "O campo URL precisa de um endereço que comece com http:// ou https://."),
    ("url", "ftp://exemplo.com", "O campo URL precisa de um endereço que comece com http:// ou https://."),
    ("url", "https://", "O campo URL precisa de um endereço que comece com http:// ou https://."),
    ("text", "x" * 1001, "O campo Texto pode ter no máximo 1000 caracteres."),
    ("text", ["a"], "O campo Texto aceita só texto."),
    (PLANO, "Bronze", "O campo plano aceita só uma das opções da lista (veja Configurações › Campos)."),
    (FieldDef(2, "nascimento", "Nascimento", "date"), "ontem?",
     "O campo nascimento aceita só datas, como 31/12/2026 ou 2026-12-31."),
])
def test_invalid_values_are_refused_in_portuguese_naming_the_field(field, raw, message):
    with pytest.raises(InvalidInput) as caught:
        coerce(field, raw)
    assert error_text(caught.value) == message


def test_values_read_as_people_write_them():
    show = contact_fields.display_value
    assert (show("number", 1234.56), show("number", 1234567), show("number", -2)) == ("1.234,56", "1.234.567", "-2")
    assert (show("date", "2026-12-31"), show("boolean", True), show("boolean", False)) == ("31/12/2026", "Sim", "Não")
    assert (show(None, "livre"), show("text", None), show(None, 42)) == ("livre", "", "42")


# -- definitions ------------------------------------------------------------------------------------------------

def test_managers_define_fields_everyone_reads_them(engine, r):
    ws = make_workspace()
    admin, supervisor, agent = make_actor(ws), make_actor(ws, "supervisor"), make_actor(ws, "agent")
    nasc = contact_fields.create_field(admin, "nascimento", "  Data de   nascimento ", "date")
    plano = contact_fields.create_field(supervisor, "plano", "Plano", "choice", ["Ouro", " Prata ", ""])
    assert (nasc.label, nasc.options, plano.options) == ("Data de nascimento", (), ("Ouro", "Prata"))
    assert [f.key for f in contact_fields.list_fields(agent)] == ["nascimento", "plano"]
    with pytest.raises(PermissionDenied):
        contact_fields.create_field(agent, "cidade", "Cidade", "text")
    with pytest.raises(PermissionDenied):
        contact_fields.update_field(agent, nasc.id, label="Outro")
    with pytest.raises(PermissionDenied):
        contact_fields.delete_field(agent, nasc.id)
    with pytest.raises(PermissionDenied):
        contact_fields.reorder_fields(agent, [plano.id, nasc.id])

    contact_fields.move_field(admin, plano.id, -1)
    assert [f.key for f in contact_fields.list_fields(agent)] == ["plano", "nascimento"]
    contact_fields.move_field(admin, plano.id, -1)  # already first: stays
    contact_fields.reorder_fields(supervisor, [nasc.id, plano.id])
    assert [f.key for f in contact_fields.list_fields(agent)] == ["nascimento", "plano"]
    with pytest.raises(InvalidInput) as missing:
        contact_fields.reorder_fields(admin, [nasc.id])
    assert missing.value.key == "error.field.order"

    changed = contact_fields.update_field(admin, plano.id, label="Plano contratado",
                                          options=["Ouro", "Prata", "Bronze"])
    assert (changed.key, changed.label, changed.options) == ("plano", "Plano contratado", ("Ouro", "Prata", "Bronze"))


@pytest.mark.parametrize("key, label, field_type, options, error", [
    ("1campo", "Campo", "text", None, "error.field.key"),
    ("e-mail", "Campo", "text", None, "error.field.key"),
    ("ação", "Campo", "text", None, "error.field.key"),
    ("campo", "   ", "text", None, "error.field.label"),
    ("campo", "x" * 121, "text", None, "error.field.label"),
    ("campo", "Campo", "money", None, "error.field.type"),
    ("campo", "Campo", "choice", [], "error.field.options_count"),
    ("campo", "Campo", "choice", [f"op{i}" for i in range(51)], "error.field.options_count"),
    ("campo", "Campo", "choice", ["x" * 101], "error.field.option_long"),
    ("campo", "Campo", "choice", ["Ouro", "OURO"], "error.field.option_duplicate"),
])
def test_bad_definitions_are_refused(engine, r, key, label, field_type, options, error):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as caught:
        contact_fields.create_field(admin, key, label, field_type, options)
    assert caught.value.key == error
    assert error_text(caught.value) != error_text(InvalidInput())  # a message of its own
    assert contact_fields.list_fields(admin) == []


def test_keys_are_unique_in_any_case_and_fields_are_bounded(engine, r, monkeypatch):
    admin = make_actor(make_workspace())
    contact_fields.create_field(admin, "cidade", "Cidade", "text")
    with pytest.raises(Conflict) as taken:
        contact_fields.create_field(admin, "Cidade", "Outra cidade", "text")
    assert error_text(taken.value) == "Já existe um campo com a chave Cidade."
    monkeypatch.setattr(contact_fields, "MAX_FIELDS", 2)
    contact_fields.create_field(admin, "bairro", "Bairro", "text")
    with pytest.raises(InvalidInput) as full:
        contact_fields.create_field(admin, "cep", "CEP", "text")
    assert error_text(full.value) == "Um espaço de trabalho pode ter no máximo 2 campos."


def test_another_workspaces_field_is_not_found(engine, r):
    mine, theirs = make_actor(make_workspace()), make_actor(make_workspace("Outra"))
    their_field = contact_fields.create_field(theirs, "plano", "Plano", "text")
    contact_fields.create_field(mine, "plano", "Plano", "number")  # the same key in another workspace is fine
    for call in (lambda: contact_fields.update_field(mine, their_field.id, label="Meu"),
                 lambda: contact_fields.delete_field(mine, their_field.id),
                 lambda: contact_fields.field_usage(mine, their_field.id),
                 lambda: contact_fields.move_field(mine, their_field.id, 1),
                 lambda: contact_fields.reorder_fields(mine, [their_field.id])):
        with pytest.raises(NotFound) as caught:
            call()
        assert error_text(caught.value) == "Campo não encontrado."
    assert [(f.label, f.type) for f in contact_fields.list_fields(theirs)] == [("Plano", "text")]


def contact_in_inbox(role: str = "admin"):
    """(actor, contact id) of a workspace whose number got one message from Maria."""
    _, actor, conversation_id = inbox_with_one_conversation(role)
    return actor, conversations.get_conversation(actor, conversation_id)["contact"]["id"]


def stored_fields(contact_id: int) -> dict:
    with session_scope() as s:
        return dict(s.get(Contact, contact_id).custom_data)


def test_changing_a_type_converts_values_or_refuses_with_the_count(engine, r):
    actor, contact_id = contact_in_inbox()
    contacts.update_contact(actor, contact_id, custom_data={"valor": "1.234,50", "nivel": "ouro"})
    valor = contact_fields.create_field(actor, "valor", "Valor", "text")  # free-form text fits a text field
    assert stored_fields(contact_id) == {"valor": "1.234,50", "nivel": "ouro"}
    contact_fields.update_field(actor, valor.id, field_type="number")
    assert stored_fields(contact_id)["valor"] == 1234.5  # converted in the same change

    with pytest.raises(Conflict) as refused:
        contact_fields.update_field(actor, valor.id, field_type="date")
    assert error_text(refused.value) == ("Nada foi alterado: o campo valor tem valores que não cabem no novo tipo ou "
                                         "nas novas opções (contatos afetados: 1). Corrija esses valores e tente de "
                                         "novo.")
    assert contact_fields.list_fields(actor)[0].type == "number" and stored_fields(contact_id)["valor"] == 1234.5

    with pytest.raises(Conflict):  # existing free-form values must fit a new definition too
        contact_fields.create_field(actor, "nivel", "Nível", "choice", ["Prata"])
    nivel = contact_fields.create_field(actor, "nivel", "Nível", "choice", ["Ouro", "Prata"])
    assert stored_fields(contact_id)["nivel"] == "Ouro"
    with pytest.raises(Conflict):  # dropping an option a contact holds
        contact_fields.update_field(actor, nivel.id, options=["Prata"])
    contact_fields.update_field(actor, nivel.id, field_type="text")  # a list's values are text
    assert stored_fields(contact_id) == {"valor": 1234.5, "nivel": "Ouro"}


def test_delete_says_how_many_contacts_lose_their_value(engine, r):
    actor, contact_id = contact_in_inbox()
    cidade = contact_fields.create_field(actor, "cidade", "Cidade", "text")
    assert contact_fields.field_usage(actor, cidade.id) == 0
    contacts.update_contact(actor, contact_id, custom_data={"cidade": "Recife", "outro": "fica"})
    assert contact_fields.field_usage(actor, cidade.id) == 1
    assert contact_fields.delete_field(actor, cidade.id) == 1
    assert stored_fields(contact_id) == {"outro": "fica"} and contact_fields.list_fields(actor) == []


# -- writers: the inbox panel -----------------------------------------------------------------------------------

def test_panel_writes_are_validated_by_type(engine, r):
    actor, contact_id = contact_in_inbox("agent")
    admin = make_actor(actor.workspace_id)
    contact_fields.create_field(admin, "nascimento", "Nascimento", "date")
    contact_fields.create_field(admin, "cliente", "Cliente", "boolean")
    contact_fields.create_field(admin, "valor", "Valor", "number")
    contacts.update_contact(actor, contact_id, custom_data=[("nascimento", date(1990, 5, 1)), ("cliente", True),
                                                            ("valor", "2.500,00"), ("apelido", " Mari ")])
    assert stored_fields(contact_id) == {"nascimento": "1990-05-01", "cliente": True, "valor": 2500,
                                         "apelido": "Mari"}

    with pytest.raises(InvalidInput) as caught:
        contacts.update_contact(actor, contact_id, name="Não salva",
                                custom_data=[("nascimento", "30/02/1990"), ("valor", 1)])
    assert error_text(caught.value) == "O campo nascimento aceita só datas, como 31/12/2026 ou 2026-12-31."
    assert stored_fields(contact_id)["nascimento"] == "1990-05-01"  # nothing changed
    assert contacts.contact_profile(actor, contact_id)["name"] is None

    with pytest.raises(InvalidInput) as free:  # free-form fields stay text
        contacts.update_contact(actor, contact_id, custom_data={"apelido": ["lista"]})
    assert error_text(free.value) == "O campo apelido aceita só texto."
    contacts.update_contact(actor, contact_id, custom_data={"valor": None, "cliente": False})
    assert stored_fields(contact_id) == {"cliente": False}  # an empty value removes the field
    with session_scope() as s:
        changes = s.scalars(select(ActivityEvent.data).where(ActivityEvent.kind == "field_changed")
                            .order_by(ActivityEvent.id)).all()
    assert {"source": "agent", "key": "valor", "old": 2500, "new": None} in changes
    assert {"source": "agent", "key": "cliente", "old": True, "new": False} in changes


def test_panel_edits_email_and_company(engine, r):
    actor, contact_id = contact_in_inbox("agent")
    contacts.update_contact(actor, contact_id, email=" Maria@Exemplo.com ", company="  Padaria <b>Pão</b> ")
    profile = contacts.contact_profile(actor, contact_id)
    assert (profile["email"], profile["company"]) == ("maria@exemplo.com", "Padaria <b>Pão</b>")
    with pytest.raises(InvalidInput) as bad:
        contacts.update_contact(actor, contact_id, email="maria")
    assert error_text(bad.value) == "O campo E-mail precisa de um e-mail válido, como nome@empresa.com.br."
    with pytest.raises(InvalidInput) as long:
        contacts.update_contact(actor, contact_id, company="x" * 256)
    assert error_text(long.value) == "O nome da empresa pode ter no máximo 255 caracteres."
    contacts.update_contact(actor, contact_id, email="", company="")
    profile = contacts.contact_profile(actor, contact_id)
    assert (profile["email"], profile["company"]) == (None, None)


def test_validate_values_for_imports(engine, r):
    admin = make_actor(make_workspace())
    contact_fields.create_field(admin, "valor", "Valor", "number")
    with session_scope() as s:
        assert contact_fields.validate_values(s, admin.workspace_id, {"valor": "1.000", "obs": " oi ", "vazio": ""}) \
            == {"valor": 1000, "obs": "oi", "vazio": None}
        with pytest.raises(InvalidInput) as bad_key:
            contact_fields.validate_values(s, admin.workspace_id, {"valor": "1", "má chave": "x"})
        assert (bad_key.value.key, bad_key.value.context) == ("error.field_key", {"n": 2})


# -- writers: funnels -------------------------------------------------------------------------------------------

LEAD = "5511988887777"


def capture_funnel() -> dict:
    """Any message -> set "valor" from the message -> wait for a reply saved to "nascimento" -> end."""
    nodes = [{"id": "t", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "any_message"}},
             {"id": "v", "type": "set_field", "position": {"x": 300, "y": 0},
              "data": {"target": "contact.custom_data.valor", "value": "{{trigger.message}}"}},
             {"id": "w", "type": "wait_reply", "position": {"x": 600, "y": 0},
              "data": {"save_to": "contact.custom_data.nascimento"}},
             {"id": "e", "type": "end", "position": {"x": 900, "y": 0}, "data": {}}]
    return {"nodes": nodes, "edges": [{"id": "a", "source": "t", "target": "v", "label": "next"},
                                      {"id": "b", "source": "v", "target": "w", "label": "next"},
                                      {"id": "c", "source": "w", "target": "e", "label": "next"}]}


def run_log(node_id: str) -> list[str]:
    with session_scope() as s:
        data = s.scalars(select(FunnelEvent.data).where(FunnelEvent.node_id == node_id)
                         .order_by(FunnelEvent.id.desc())).first()
    return data.get("log", [])


def lead_fields() -> dict:
    with session_scope() as s:
        return dict(s.scalars(select(Contact).where(Contact.phone == LEAD)).one().custom_data)


def test_funnel_writes_are_validated_and_a_bad_value_keeps_the_old_one(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    contact_fields.create_field(admin, "valor", "Valor", "number")
    contact_fields.create_field(admin, "nascimento", "Nascimento", "date")
    funnel_id = funnels.create_funnel(admin, "Captura", capture_funnel())
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    runs.clear_cache()

    publish(inbound(inst, phone=LEAD, text="1.500,00"))
    run_jobs()
    publish(inbound(inst, phone=LEAD, text="31/12/1990"))
    run_jobs()
    assert lead_fields() == {"valor": 1500, "nascimento": "1990-12-31"}
    assert run_log("v") == [] and run_log("w") == []

    publish(inbound(inst, phone=LEAD, text="muito caro"))  # a new run: "valor" gets a text
    run_jobs()
    publish(inbound(inst, phone=LEAD, text="não lembro"))
    run_jobs()
    assert lead_fields() == {"valor": 1500, "nascimento": "1990-12-31"}  # old values kept
    assert run_log("v") == ["campo valor não foi salvo, o valor anterior continua: O campo valor aceita só números, "
                            "como 1.234,56 ou 1234.56."]
    assert run_log("w") == ["campo nascimento não foi salvo, o valor anterior continua: O campo nascimento aceita só "
                            "datas, como 31/12/2026 ou 2026-12-31."]
    with session_scope() as s:  # the run went on to its end
        statuses = s.scalars(select(FunnelEvent.node_type).order_by(FunnelEvent.id)).all()
        changes = s.scalars(select(ActivityEvent.data).where(ActivityEvent.kind == "field_changed")).all()
    assert statuses[-1] == "end" and statuses.count("end") == 2
    assert [(c["source"], c["key"], c["new"]) for c in changes] == [("funnel", "valor", 1500),
                                                                   ("funnel", "nascimento", "1990-12-31")]


# -- funnel conditions compare typed fields by type --------------------------------------------------------------

def rule_holds(field_type: str | None, stored, operator: str, value: str) -> bool:
    ctx = ExecutionContext(now=datetime(2026, 6, 15, 12, 0, tzinfo=UTC), contact={"custom_data": {"x": stored}},
                           field_types={"x": field_type} if field_type else {})
    return evaluate_rule(Rule(field="contact.custom_data.x", operator=operator, value=value), ctx)[0]


@pytest.mark.parametrize("field_type, stored, operator, value, holds", [
    ("date", "2026-12-31", "greater", "30/12/2026", True),
    ("date", "2026-12-31", "equals", "31/12/2026", True),
    ("date", "2026-06-01", "less", "hoje", True),
    (None, "2026-12-31", "greater", "30/12/2026", False),  # free-form: "30/12/2026" is no ISO date
    ("number", 1234.5, "equals", "1.234,50", True),
    ("number", 1234.5, "greater", "999", True),
    ("number", 1234.5, "less", "1.000", False),
    ("number", 10, "not_equals", "10,0", False),
    ("boolean", True, "equals", "sim", True),
    ("boolean", False, "equals", "Não", True),
    ("boolean", False, "not_equals", "sim", True),
    ("boolean", True, "greater", "não", False),
    ("number", "abc", "equals", "abc", True),  # a value not of the type is compared as text
])
def test_condition_rules_compare_typed_fields_by_type(field_type, stored, operator, value, holds):
    assert rule_holds(field_type, stored, operator, value) is holds


def test_the_editors_test_chat_compares_typed_fields_like_runs():
    def node(node_id: str, node_type: str, data: dict) -> dict:
        return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}

    rule = {"field": "contact.custom_data.retorno", "operator": "greater", "value": "30/12/2026"}
    draft = {"nodes": [node("t", "trigger", {"kind": "any_message"}),
                       node("f", "set_field", {"target": "contact.custom_data.retorno", "value": "31/12/2026"}),
                       node("c", "condition", {"groups": [{"rules": [rule]}]}),
                       node("depois", "send_message", {"text": "depois"}),
                       node("antes", "send_message", {"text": "antes"})],
             "edges": [{"id": "a", "source": "t", "target": "f", "label": "next"},
                       {"id": "b", "source": "f", "target": "c", "label": "next"},
                       {"id": "c1", "source": "c", "target": "depois", "label": "true"},
                       {"id": "c2", "source": "c", "target": "antes", "label": "false"}]}

    def bot_says(field_types):
        state = preview.send(draft, preview.PreviewState(), "oi", field_types=field_types)
        return [entry.text for entry in state.entries if entry.role == "bot"]

    assert bot_says({"retorno": "date"}) == ["depois"]
    assert bot_says(None) == ["antes"]  # free-form text: "30/12/2026" is no ISO date, so "greater" is false
