"""E-mail: the workspace's SMTP server (Configurações › E-mail) and the e-mails of "Notificar humano".

The settings (host, port, security ``tls`` / ``starttls`` / ``none``, user, sender) live in the ``integrations``
table with the password Fernet-encrypted (never shown again). *Enviar e-mail de teste* sends at once and reports
what failed, in words a person can act on (``MailError.kind``).

A "Notificar humano" step with *Também por e-mail* stores its in-app notification as always and, after commit,
queues one RQ job (``engine.worker.jobs.email_notification``, queue ``default``) that e-mails the person or every
member of the team. The job retries an SMTP failure 3 times (after 30 s, 2 and 10 minutes); a failed e-mail is
logged and never touches the funnel, which has moved on long before.
"""

from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.services.auth import Actor
from workbench.services.secrets import integration_row
from workbench.store.crypto import decrypt_secret, encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation, Integration, Notification, TeamMember, User
from workbench.store.text import clean_json

log = logging.getLogger(__name__)

KIND = "smtp"
TIMEOUT_S = 15.0
MAX_RECIPIENTS = 50
_EMAIL = r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$"


class SmtpSettings(BaseModel):
    """Where e-mail goes out: the SMTP server, how the connection is protected, who sends."""

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "starttls"
    username: str = Field("", max_length=254)
    sender: str = Field(min_length=3, max_length=254, pattern=_EMAIL)
    sender_name: str = Field("", max_length=120)

    @field_validator("host", "username", "sender", "sender_name", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        # one line each: a line break in a header value would be refused (or worse) when the e-mail is built
        return " ".join(value.split()) if isinstance(value, str) else value


@dataclass(frozen=True)
class MailConfig:
    """What the settings page shows: the settings and whether a password is stored (never the password)."""

    settings: SmtpSettings
    has_password: bool


class MailError(Exception):
    """A failed send. ``kind``: ``not_configured``, ``unreachable``, ``timeout``, ``tls``, ``auth``, ``refused``
    (the server refused a sender or recipient) or ``smtp`` (another SMTP error); ``detail`` holds no password."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail[:300]


def _row(session: Session, workspace_id: int) -> Integration | None:
    return integration_row(session, workspace_id, KIND)


def get_config(actor: Actor) -> MailConfig | None:
    """The workspace's SMTP settings (admins); None when never saved."""
    actor.require("admin")
    with session_scope() as session:
        row = _row(session, actor.workspace_id)
        return None if row is None else MailConfig(SmtpSettings.model_validate(row.config), row.secret is not None)


def save_config(actor: Actor, values: dict[str, Any], password: str | None = None) -> MailConfig:
    """Store the SMTP settings (admins). An empty ``password`` keeps the stored one (a server without login needs
    none)."""
    actor.require("admin")
    try:
        settings = SmtpSettings.model_validate(clean_json(values))
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        field = str(loc[0]) if loc else ""
        raise InvalidInput(str(exc), key=f"error.mail.{field}" if field in ("host", "port", "sender") else
                           "error.mail.invalid") from exc
    password = password or ""
    if len(password) > 1024:
        raise InvalidInput("password too long", key="error.mail.invalid")
    with session_scope() as session:
        row = _row(session, actor.workspace_id)
        if row is None:
            row = Integration(workspace_id=actor.workspace_id, kind=KIND, name=KIND, config=settings.model_dump())
            session.add(row)
        row.config = settings.model_dump()
        if password:
            row.secret = encrypt_secret(password)
        has_password = row.secret is not None
    return MailConfig(settings, has_password)


def _load(session: Session, workspace_id: int) -> tuple[SmtpSettings, str | None] | None:
    row = _row(session, workspace_id)
    if row is None:
        return None
    return SmtpSettings.model_validate(row.config), decrypt_secret(row.secret) if row.secret else None


def deliver(settings: SmtpSettings, password: str | None, recipients: list[str], subject: str, body: str) -> None:
    """Send one plain-text e-mail; raises ``MailError``."""
    message = EmailMessage()
    message["From"] = formataddr((settings.sender_name, settings.sender)) if settings.sender_name else settings.sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = " ".join(subject.split())[:200]  # no header injection through a line break
    message["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[-1])
    message.set_content(body)
    import smtplib  # here, not at import: the workers load this module and most never send an e-mail

    context = ssl.create_default_context()
    try:
        if settings.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=TIMEOUT_S, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, password or "")
            client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError("auth", str(exc.smtp_code)) from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        raise MailError("refused", type(exc).__name__) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError("tls", str(exc)) from None
    except ssl.SSLError as exc:
        raise MailError("tls", exc.reason or type(exc).__name__) from None
    except TimeoutError:
        raise MailError("timeout") from None
    except smtplib.SMTPException as exc:
        raise MailError("smtp", type(exc).__name__) from None
    except OSError as exc:
        raise MailError("unreachable", type(exc).__name__) from None


def send_test(actor: Actor, to: str) -> None:
    """*Enviar e-mail de teste* (admins): send now, with the stored settings; raises ``MailError``."""
    actor.require("admin")
    to = (to or "").strip()
    if not re.match(_EMAIL, to):
        raise InvalidInput("e-mail", key="error.email")
    with session_scope() as session:
        loaded = _load(session, actor.workspace_id)
    if loaded is None:
        raise MailError("not_configured")
    settings, password = loaded
    deliver(settings, password, [to], t("mail.test.subject"), t("mail.test.body"))


def notification_email(notification_id: int) -> str:
    """Send the e-mail of a "Notificar humano" notification (the RQ job's body); returns what happened.

    ``sent``, ``no_recipients`` or ``not_configured``; raises ``MailError`` for a failed send, so RQ retries it.
    """
    with session_scope() as session:
        note = session.get(Notification, notification_id)
        if note is None:
            return "gone"
        loaded = _load(session, note.workspace_id)
        if loaded is None:
            log.warning("notification %s: e-mail asked but the workspace has no SMTP settings", notification_id)
            return "not_configured"
        if note.user_id is not None:
            users = select(User.email).where(User.id == note.user_id, User.is_active.is_(True))
        else:
            users = select(User.email).join(TeamMember, TeamMember.user_id == User.id) \
                .where(TeamMember.team_id == note.team_id, User.is_active.is_(True))
        recipients = sorted(set(session.scalars(users.limit(MAX_RECIPIENTS))))
        contact = session.execute(select(Contact.name, Contact.push_name, Contact.phone)
                                  .join(Conversation, Conversation.contact_id == Contact.id)
                                  .where(Conversation.id == note.conversation_id)).first()
        body = note.body
    if not recipients:
        return "no_recipients"
    who = (contact.name or contact.push_name or contact.phone) if contact else ""
    settings, password = loaded
    subject = t("mail.notify.subject", who=who) if who else t("mail.notify.subject_plain")
    deliver(settings, password, recipients, subject, t("mail.notify.body", text=body, who=who or "—"))
    return "sent"
