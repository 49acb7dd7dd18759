"""Configurações › Integrações (admins): secrets saved encrypted and never shown again, a generated signing key
shown once; Odoo's connection form and its test; Configurações › E-mail."""

from __future__ import annotations

from tests import test_mail
from tests.factories import inbox_with_one_conversation, make_actor, make_workspace
from tests.fake_odoo import FakeOdoo
from tests.test_pages_contact import open_contact
from tests.test_pages_inbox import open_conversation, open_inbox
from tests.test_pages_settings import open_page
from workbench.services import mail, odoo, secrets
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation

smtp = test_mail.smtp  # the local SMTP server fixture
PASSWORD = test_mail.PASSWORD


def test_admin_saves_a_secret_that_is_never_shown_again(engine, r):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    at.text_input(key="settings_secret_name").input("crm_token")
    at.text_input(key="settings_secret_value").input("sk-live-abcdefghijklmnop")
    at = at.button(key="settings_secret_save").click().run()
    assert not at.exception
    assert "Segredo salvo. Ele não será mostrado de novo." in [s.value for s in at.success]
    shown = next(frame.value for frame in at.dataframe if "Final" in frame.value.columns)
    assert list(shown["Final"]) == ["••••mnop"]
    everything = repr(list(at.main)) + repr({k: at.session_state[k] for k in at.session_state})
    assert "sk-live-abcdefghijklmnop" not in everything
    assert at.text_input(key="settings_secret_value").value == ""

    # a bad name: a clear message, and what was typed stays
    at.text_input(key="settings_secret_name").input("com espaço")
    at.text_input(key="settings_secret_value").input("x")
    at = at.button(key="settings_secret_save").click().run()
    assert [e.value for e in at.error] == ["Nome de segredo inválido: use letras, números, _ . e -, começando com uma "
                                           "letra (até 64)."]
    assert at.text_input(key="settings_secret_name").value == "com espaço"


def test_a_generated_signing_key_is_shown_once(engine, r):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    at.text_input(key="settings_secret_name").input("assinatura")
    at = at.button(key="settings_secret_generate").click().run()
    codes = [c.value for c in at.code]
    assert len([c for c in codes if c.startswith("whsec_")]) == 1
    at = at.run()
    assert not [c for c in (c.value for c in at.code) if c.startswith("whsec_")]
    assert [s.name for s in secrets.list_secrets(admin)] == ["assinatura"]


def test_supervisors_do_not_see_the_integrations(engine, r):
    ws = make_workspace()
    secrets.set_secret(make_actor(ws), "token", "valor-secreto-123")
    at = open_page(make_actor(ws, "supervisor"))
    assert not at.exception
    assert "Só administradores podem ver e mudar esta parte." in [c.value for c in at.caption]
    assert not [t for t in at.text_input if t.key == "settings_secret_name"]


def test_admin_configures_odoo_and_testar_conexao_reports_the_version_or_the_problem(engine, r):
    fake = FakeOdoo().start()
    try:
        admin = make_actor(make_workspace())
        at = open_page(admin)
        at.text_input(key="settings_odoo_url").input(fake.url)
        at.text_input(key="settings_odoo_database").input(fake.database)
        at.text_input(key="settings_odoo_login").input(fake.login)
        at.text_input(key="settings_odoo_key").input(fake.api_key)
        at.number_input(key="settings_odoo_team").set_value(3)
        at.text_area(key="settings_odoo_tags").input("WhatsApp\nbot")
        at = at.button(key="settings_odoo_save").click().run()
        assert not at.exception
        assert "Conexão com o Odoo salva." in [s.value for s in at.success]
        assert "Chave salva: termina em 3456" in [c.value for c in at.caption]
        config = odoo.get_config(admin)
        assert (config.settings.team_id, config.settings.tags) == (3, ["WhatsApp", "bot"])
        at = at.button(key="settings_odoo_test").click().run()
        assert "Conexão funcionando: Odoo 17.0+e, com permissão de ler e criar oportunidades." in [
            s.value for s in at.success]
        # the teams, salespeople and stages it found are now picked by name
        team_box = at.selectbox(key="settings_odoo_team")
        assert team_box.options == ["—", "Vendas (1)", "Pós-venda (2)", "? (3)"]  # 3: typed before, kept
        at.selectbox(key="settings_odoo_stage").set_value(2)
        at = at.button(key="settings_odoo_save").click().run()
        assert odoo.get_config(admin).settings.stage_id == 2
        fake.rights["read"] = False
        at = at.button(key="settings_odoo_test").click().run()
        assert [e.value for e in at.error] == [
            "A conexão falhou: o usuário não tem permissão de ler e criar oportunidades (crm.lead)."]
        # a bad URL is refused clearly and what was typed stays
        at.text_input(key="settings_odoo_url").input("odoo.empresa.com")
        at = at.button(key="settings_odoo_save").click().run()
        assert [e.value for e in at.error] == ["Endereço do Odoo inválido: use http:// ou https://."]
        assert at.text_input(key="settings_odoo_url").value == "odoo.empresa.com"
        assert fake.api_key not in repr(list(at.main))
    finally:
        fake.stop()


def test_admin_saves_the_smtp_server_and_sends_a_test_e_mail(engine, r, smtp):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    at.text_input(key="settings_mail_host").input("127.0.0.1")
    at.number_input(key="settings_mail_port").set_value(smtp.port)
    at.radio(key="settings_mail_security").set_value("none")
    at.text_input(key="settings_mail_username").input("bot")
    at.text_input(key="settings_mail_password").input(PASSWORD)
    at.text_input(key="settings_mail_sender").input("bot@loja.com.br")
    at = at.button(key="settings_mail_save").click().run()
    assert not at.exception
    assert "Configuração de e-mail salva." in [s.value for s in at.success]
    assert "Há uma senha salva." in [c.value for c in at.caption]
    assert PASSWORD not in repr(list(at.main))
    at.text_input(key="settings_mail_test_to").input("dono@loja.com.br")
    at = at.button(key="settings_mail_test").click().run()
    assert "E-mail de teste enviado. Confira a caixa de entrada (e o spam)." in [s.value for s in at.success]
    assert smtp.envelopes[0][1] == ["dono@loja.com.br"]
    # a wrong password: the page says what failed
    mail.save_config(admin, {"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "bot",
                             "sender": "bot@loja.com.br"}, "errada")
    at = at.button(key="settings_mail_test").click().run()
    assert [e.value for e in at.error] == ["O e-mail de teste falhou: usuário ou senha recusados pelo servidor."]


def test_the_contacts_odoo_lead_is_linked_in_the_inbox_and_the_visao_360(engine, r):
    inst, agent, conversation_id = inbox_with_one_conversation("admin")
    odoo.save_config(agent, {"url": "https://odoo.loja.com.br", "database": "loja", "login": "bot"}, "k" * 20)
    with session_scope() as s:
        contact = s.get(Conversation, conversation_id).contact_id
        s.get(Contact, contact).odoo_lead_id = 42
    url = "https://odoo.loja.com.br/web#id=42&model=crm.lead&view_type=form"
    page = open_contact(agent, contact)
    assert not page.exception
    assert "Oportunidade no Odoo: nº 42" in [c.value for c in page.caption]
    assert [b.proto.url for b in page.get("link_button")] == [url]
    inbox = open_conversation(open_inbox(agent), conversation_id)
    assert not inbox.exception
    assert "Oportunidade no Odoo: nº 42" in [c.value for c in inbox.caption]


def test_the_editor_draws_the_webhook_form_and_picks_secrets_by_name(engine, r):
    from tests.test_pages_editor import click, open_editor, stored_data, widget
    from workbench.services import funnels

    ws = make_workspace()
    admin = make_actor(ws)
    secrets.set_secret(admin, "crm_token", "valor-secreto-123")
    fid = funnels.create_funnel(admin, "Pedido", {
        "nodes": [{"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "manual"}},
                  {"id": "http", "type": "webhook", "position": {"x": 300, "y": 0},
                   "data": {"url": "https://api.exemplo.com/x", "body": "{}"}}],
        "edges": [{"id": "e1", "source": "inicio", "target": "http", "label": "next"}]})
    at = click(open_editor(admin, fid), fid, "http")
    assert not at.exception
    secret_box = widget(at.selectbox, "_auth_secret")
    assert secret_box.options == ["—", "crm_token"]  # the name only
    widget(at.selectbox, "_auth").set_value("bearer")
    at = secret_box.set_value("crm_token").run()
    widget(at.text_area, "_mapping").input("data.id -> vars.pedido")
    at = at.button(key="editor_apply_http").click().run()
    at = at.button(key="editor_save").click().run()
    data = stored_data(admin, fid, "http")
    assert (data["auth"], data["auth_secret"], data["mapping"]) == ("bearer", "crm_token", ["data.id -> vars.pedido"])
    assert "valor-secreto-123" not in repr(list(at.main))
