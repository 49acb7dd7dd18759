"""Configurações › Campos: define, edit, reorder and delete the contacts' typed fields."""

from __future__ import annotations

from datetime import date

from streamlit.testing.v1 import AppTest

from tests.factories import inbox_with_one_conversation, make_actor, make_workspace
from tests.test_pages_app import signed_in_app
from tests.test_pages_editor import click, open_editor, stored_data, widget
from tests.test_pages_inbox import fields_editor, open_conversation, open_inbox, walk
from workbench.services import contact_fields, contacts, conversations, funnels


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)
    at.run()
    return at.switch_page("pages/settings.py").run()


def create(at: AppTest, key: str, label: str, field_type: str, options: str = "") -> AppTest:
    at.text_input(key="settings_field_new_key").input(key)
    at.text_input(key="settings_field_new_label").input(label)
    at.selectbox(key="settings_field_new_type").set_value(field_type)
    at.text_area(key="settings_field_new_options").input(options)
    return at.button(key="settings_field_create").click().run()


def by_key(at: AppTest, prefix: str):
    """The one widget whose key starts with ``prefix`` (edit widgets are keyed by the stored values)."""
    found = [w for kind in (at.text_input, at.text_area, at.selectbox, at.number_input, at.date_input) for w in kind
             if (w.key or "").startswith(prefix)]
    assert len(found) == 1, prefix
    return found[0]


def test_admin_defines_edits_reorders_and_deletes_fields(engine, r):
    _, agent, conversation_id = inbox_with_one_conversation("agent")
    admin = make_actor(agent.workspace_id)
    contact_id = conversations.get_conversation(agent, conversation_id)["contact"]["id"]
    at = open_page(admin)
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["Geral", "Campos", "Respostas rápidas", "Relatórios", "Integrações",
                                              "E-mail", "IA"]
    assert "Nenhum campo definido ainda." in [c.value for c in at.caption]
    assert at.selectbox(key="settings_field_new_type").options == [
        "Texto", "Número", "Data", "Lista de opções", "Sim/não", "E-mail", "Telefone", "URL"]

    at = create(at, "plano", "Plano **contratado**", "choice", "Ouro\nPrata\n\n")
    assert not at.exception
    assert [s.value for s in at.success] == ["Campo criado."]
    at = create(at, "nascimento", "Nascimento", "date")
    table = at.tabs[1].dataframe[0].value
    assert list(table.columns) == ["Rótulo", "Chave", "Tipo", "Opções"]
    assert table.values.tolist() == [["Plano **contratado**", "plano", "Lista de opções", "Ouro, Prata"],
                                     ["Nascimento", "nascimento", "Data", ""]]  # labels literal, never Markdown

    # A bad key is refused with a message, and what was typed stays to fix it.
    at = create(at, "data nasc", "Outra", "text")
    assert [e.value for e in at.error] == [
        "Chave inválida. Use letras sem acento, números e _, começando por letra (até 64 caracteres)."]
    assert at.text_input(key="settings_field_new_key").value == "data nasc"

    # The just-created field is picked for editing; change its options.
    plano, nascimento = contact_fields.list_fields(admin)
    pick = at.selectbox(key="settings_field_pick")
    assert pick.options == ["Plano **contratado** (plano)", "Nascimento (nascimento)"] and pick.value == nascimento.id
    pick.set_value(plano.id).run()
    by_key(at, "settings_field_options_").input("Ouro\nPrata\nBronze")
    at = at.button(key="settings_field_save").click().run()
    assert [s.value for s in at.success] == ["Campo salvo."]
    assert [f.options for f in contact_fields.list_fields(admin)][0] == ("Ouro", "Prata", "Bronze")

    # A type change that does not fit the stored values is refused with the count.
    contacts.update_contact(agent, contact_id, custom_data={"plano": "Ouro"})
    by_key(at, "settings_field_type_").set_value("number")
    at = at.button(key="settings_field_save").click().run()
    assert [e.value for e in at.error] == [
        "Nada foi alterado: o campo plano tem valores que não cabem no novo tipo ou nas novas opções (contatos "
        "afetados: 1). Corrija esses valores e tente de novo."]
    assert contact_fields.list_fields(admin)[0].type == "choice"

    at = at.button(key="settings_field_down").click().run()
    assert [f.key for f in contact_fields.list_fields(admin)] == ["nascimento", "plano"]
    assert at.button(key="settings_field_down").disabled  # now last

    at = at.button(key="settings_field_delete").click().run()
    assert [w.value for w in at.warning] == [
        "Apagar este campo? 1 contato tem um valor nele, que também será apagado. Não dá para desfazer."]
    at = at.button(key="settings_field_delete_no").click().run()
    assert not at.warning and len(contact_fields.list_fields(admin)) == 2
    at = at.button(key="settings_field_delete").click().run()
    at = at.button(key="settings_field_delete_yes").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Campo apagado."]
    assert [f.key for f in contact_fields.list_fields(admin)] == ["nascimento"]
    assert contacts.contact_profile(agent, contact_id)["custom_data"] == {}


def test_supervisors_manage_fields_too(engine, r):
    supervisor = make_actor(make_workspace(), "supervisor")
    at = create(open_page(supervisor), "cidade", "Cidade", "text")
    assert not at.exception and [s.value for s in at.success] == ["Campo criado."]
    assert [f.key for f in contact_fields.list_fields(supervisor)] == ["cidade"]


def test_the_inbox_panel_edits_defined_fields_with_inputs_of_their_type(engine, r):
    _, agent, conversation_id = inbox_with_one_conversation("agent")
    admin = make_actor(agent.workspace_id)
    contact_id = conversations.get_conversation(agent, conversation_id)["contact"]["id"]
    contact_fields.create_field(admin, "valor", "Valor *estimado*", "number")
    contact_fields.create_field(admin, "nascimento", "Nascimento", "date")
    contact_fields.create_field(admin, "plano", "Plano", "choice", ["Ouro", "[Prata](http://e.vil)"])
    contact_fields.create_field(admin, "cliente", "Cliente", "boolean")
    contact_fields.create_field(admin, "site", "Site", "url")
    contacts.update_contact(agent, contact_id, custom_data={"valor": "1.234,5", "nascimento": "1990-05-01",
                                                            "apelido": "Mari"})
    at = open_conversation(open_inbox(agent), conversation_id)
    assert not at.exception
    shown = at.dataframe[0].value  # labels and values as people read them, literally
    assert shown.values.tolist() == [["Valor *estimado*", "1.234,5"], ["Nascimento", "01/05/1990"],
                                     ["apelido", "Mari"]]
    assert by_key(at, "inbox_field_valor_").value == 1234.5
    assert by_key(at, "inbox_field_nascimento_").value == date(1990, 5, 1)
    assert by_key(at, "inbox_field_plano_").options == ["Ouro", "[Prata](http://e.vil)"]
    assert by_key(at, "inbox_field_cliente_").value is None and by_key(at, "inbox_field_cliente_").options == [
        "Sim", "Não"]
    labels = [n.value for n in walk(at.main) if n.type == "text"]
    assert "Valor *estimado*" in labels  # a label typed by people, in a literal element

    by_key(at, "inbox_field_valor_").set_value(2000.0)
    by_key(at, "inbox_field_nascimento_").set_value(date(1991, 6, 2))
    by_key(at, "inbox_field_plano_").set_value("[Prata](http://e.vil)")
    by_key(at, "inbox_field_cliente_").set_value(False)
    by_key(at, "inbox_contact_email_").input("Maria@Exemplo.com")
    by_key(at, "inbox_contact_company_").input("Padaria")
    fields_editor(at, {"added_rows": [{"key": "cidade", "value": "Recife"}]})
    at = at.button(key="inbox_contact_save").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Contato atualizado."]
    profile = contacts.contact_profile(agent, contact_id)
    assert profile["custom_data"] == {"valor": 2000, "nascimento": "1991-06-02", "plano": "[Prata](http://e.vil)",
                                      "cliente": False, "apelido": "Mari", "cidade": "Recife"}
    assert (profile["email"], profile["company"]) == ("maria@exemplo.com", "Padaria")

    by_key(at, "inbox_field_site_").input("javascript:alert(1)")
    at = at.button(key="inbox_contact_save").click().run()
    assert [e.value for e in at.error] == ["O campo site precisa de um endereço que comece com http:// ou https://."]
    assert "site" not in contacts.contact_profile(agent, contact_id)["custom_data"]
    assert by_key(at, "inbox_field_site_").value == "javascript:alert(1)"  # kept on screen to fix it


def picker_funnel() -> dict:
    """Trigger -> set "plano" -> wait for a reply saved to "vars.nome" -> condition on "valor" -> end."""
    nodes = [{"id": "t", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "any_message"}},
             {"id": "campo", "type": "set_field", "position": {"x": 300, "y": 0},
              "data": {"target": "contact.custom_data.plano", "value": "Ouro"}},
             {"id": "espera", "type": "wait_reply", "position": {"x": 600, "y": 0}, "data": {"save_to": "vars.nome"}},
             {"id": "se", "type": "condition", "position": {"x": 900, "y": 0},
              "data": {"groups": [{"rules": [{"field": "contact.custom_data.valor", "operator": "greater",
                                              "value": "1.000,00"}]}]}}]
    return {"nodes": nodes, "edges": [{"id": "a", "source": "t", "target": "campo", "label": "next"},
                                      {"id": "b", "source": "campo", "target": "espera", "label": "next"},
                                      {"id": "c", "source": "espera", "target": "se", "label": "next"}]}


def test_funnel_editor_offers_the_defined_fields(engine, r):
    admin = make_actor(make_workspace())
    contact_fields.create_field(admin, "plano", "Plano <b>atual</b>", "choice", ["Ouro", "Prata"])
    contact_fields.create_field(admin, "valor", "Valor", "number")
    fid = funnels.create_funnel(admin, "Campos", picker_funnel())
    at = click(open_editor(admin, fid), fid, "campo")
    target = widget(at.selectbox, "_target")
    assert target.options == ["Nome do contato", "Plano <b>atual</b> (plano)", "Valor (valor)"]  # plain option text
    assert target.value == "contact.custom_data.plano"
    # untouched, the form applies to identical data
    at = at.button(key="editor_apply_campo").click().run()
    at = click(at, fid, "espera")
    save_to = widget(at.selectbox, "_save_to")
    assert save_to.options[-1] == "vars.nome" and save_to.value == "vars.nome"  # a typed path stays offered
    save_to.set_value("contact.custom_data.valor")
    at = at.button(key="editor_apply_espera").click().run()
    at = click(at, fid, "se")
    assert widget(at.selectbox, "_groups_0_0_field").options == ["Plano <b>atual</b> (plano)", "Valor (valor)"]
    assert widget(at.selectbox, "_groups_0_0_field").value == "valor"
    at = at.button(key="editor_apply_se").click().run()
    at = at.button(key="editor_save").click().run()
    assert not at.exception
    assert stored_data(admin, fid, "campo") == {"target": "contact.custom_data.plano", "value": "Ouro"}
    assert stored_data(admin, fid, "espera") == {"save_to": "contact.custom_data.valor"}
    assert stored_data(admin, fid, "se") == picker_funnel()["nodes"][3]["data"]
