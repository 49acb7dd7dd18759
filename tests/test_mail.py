"""E-mail against a real local SMTP server (aiosmtpd): settings with the password encrypted, *Enviar e-mail de
teste*, and "Notificar humano" by e-mail in an RQ job with retries that never stops the funnel."""

from __future__ import annotations

import email
import socket
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from rq import Queue
from sqlalchemy import select

from tests.factories import make_actor, make_team, run_jobs
from tests.test_funnel_runtime import bot_texts, say, setup_workspace
from tests.test_secrets import database_dump
from workbench.base.errors import InvalidInput, PermissionDenied
from workbench.services import mail
from workbench.services.runs import TIMER_QUEUE
from workbench.store.db import session_scope
from workbench.store.models import Notification, Team

PASSWORD = "senha-smtp-secreta-99"


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _auth(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"bot" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), authenticator=_auth,
                            auth_require_tls=False)
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def configure(admin, smtp: Inbox, **changes) -> None:
    values = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "bot",
              "sender": "bot@loja.com.br", "sender_name": "Loja"} | changes
    mail.save_config(admin, values, changes.pop("password", PASSWORD))


def test_settings_keep_the_password_encrypted_and_the_test_e_mail_arrives(engine, r, smtp):
    ws, _inst, admin, _ = setup_workspace()
    configure(admin, smtp)
    assert PASSWORD not in database_dump()
    config = mail.get_config(admin)
    assert (config.settings.host, config.has_password) == ("127.0.0.1", True)
    mail.send_test(admin, "dono@loja.com.br")
    [message] = smtp.messages
    assert message["To"] == "dono@loja.com.br" and message["From"] == "Loja <bot@loja.com.br>"
    assert message["Subject"] == "Teste de e-mail do WhatsApp Workbench"
    # an empty password keeps the stored one
    mail.save_config(admin, {"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "bot",
                             "sender": "bot@loja.com.br"}, "")
    mail.send_test(admin, "dono@loja.com.br")
    assert len(smtp.messages) == 2


def test_each_failure_says_what_to_fix(engine, r, smtp):
    ws, _inst, admin, _ = setup_workspace()
    with pytest.raises(mail.MailError) as err:
        mail.send_test(admin, "dono@loja.com.br")
    assert err.value.kind == "not_configured"
    configure(admin, smtp, password="errada")
    with pytest.raises(mail.MailError) as err:
        mail.send_test(admin, "dono@loja.com.br")
    assert err.value.kind == "auth"
    configure(admin, smtp, port=_free_port())
    with pytest.raises(mail.MailError) as err:
        mail.send_test(admin, "dono@loja.com.br")
    assert err.value.kind == "unreachable"
    with pytest.raises(InvalidInput):
        mail.send_test(admin, "não é e-mail")
    for values, key in (({"host": "", "sender": "a@b.co"}, "error.mail.host"),
                        ({"host": "smtp", "sender": "x"}, "error.mail.sender"),
                        ({"host": "smtp", "port": 70000, "sender": "a@b.co"}, "error.mail.port")):
        with pytest.raises(InvalidInput) as bad:
            mail.save_config(admin, values)
        assert bad.value.key == key
    with pytest.raises(PermissionDenied):
        mail.get_config(make_actor(admin.workspace_id, "supervisor"))


def notify_funnel():
    return {"nodes": [
        {"id": "t", "type": "trigger", "data": {"kind": "keyword", "mode": "contains", "words": ["humano"]}},
        {"id": "n", "type": "notify_human", "data": {"team_name": "Vendas", "message": "{{contact.name}} quer ajuda",
                                                     "email": True}},
        {"id": "m", "type": "send_message", "data": {"text": "Já chamei alguém!"}}],
        "edges": [{"id": "e1", "source": "t", "target": "n", "label": "next"},
                  {"id": "e2", "source": "n", "target": "m", "label": "next"}]}


def test_notify_human_e_mails_the_teams_members_in_a_job(engine, r, smtp):
    ws, inst, admin, _ = setup_workspace(("Ajuda", notify_funnel))
    configure(admin, smtp)
    ana, bia = make_actor(ws, "agent", "ana@loja.com.br"), make_actor(ws, "agent", "bia@loja.com.br")
    with session_scope() as s:
        vendas = s.scalars(select(Team.id).where(Team.name == "Vendas")).one()
    make_team(ws, "Outra", ana.user_id)
    from workbench.store.models import TeamMember
    with session_scope() as s:
        s.add_all([TeamMember(team_id=vendas, user_id=ana.user_id), TeamMember(team_id=vendas, user_id=bia.user_id)])
    say(inst, "quero um humano")
    assert bot_texts() == ["Já chamei alguém!"] and smtp.messages == [], "the funnel did not wait for the e-mail"
    with session_scope() as s:
        assert s.scalar(select(Notification.body)) == "Maria quer ajuda"
    run_jobs(TIMER_QUEUE)
    [message] = smtp.messages
    assert smtp.envelopes[0][1] == ["ana@loja.com.br", "bia@loja.com.br"]
    assert message["Subject"] == "Aviso do funil: Maria" and "Maria quer ajuda" in message.get_content()


def test_a_failed_e_mail_is_retried_and_never_stops_the_funnel(engine, r, smtp):
    ws, inst, admin, _ = setup_workspace(("Ajuda", notify_funnel))
    configure(admin, smtp, port=_free_port())  # nobody listens there
    ana = make_actor(ws, "agent", "ana@loja.com.br")
    from workbench.store.models import TeamMember
    with session_scope() as s:
        vendas = s.scalars(select(Team.id).where(Team.name == "Vendas")).one()
        s.add(TeamMember(team_id=vendas, user_id=ana.user_id))
    say(inst, "humano")
    assert bot_texts() == ["Já chamei alguém!"]
    run_jobs(TIMER_QUEUE)
    queue = Queue(TIMER_QUEUE, connection=r)
    scheduled = queue.scheduled_job_registry.get_job_ids()
    assert len(scheduled) == 1, "the send failed and waits for its retry"
    job = queue.fetch_job(scheduled[0])
    assert job.func_name == "engine.worker.jobs.email_notification" and job.retries_left == 2
