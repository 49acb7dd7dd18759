"""Odoo CRM: the workspace's connection (Configurações › Integrações › Odoo) and the lead push of the step
"Enviar para Odoo".

**Connection.** URL, database, login and API key (Fernet-encrypted in ``integrations.secret``, never shown again
but for its last 4 characters), plus the defaults every push uses: sales team, salesperson, stage, tags and the
UTM source ("WhatsApp"). *Testar conexão* (``test_connection``) walks the steps a push needs and stops at the first
that fails, naming it: the server answers (its version), the database exists, the login and key are accepted,
the CRM app is installed, the user may read and create ``crm.lead``.

**Push** (``push_lead``, run by the outside-call executor in a worker, never in the drain). A push creates at most
one lead, however often it is retried:

1. a lead whose description holds this push's marker (``(envio wb-<call id>)``) is the one an earlier try of the
   same push created before it could record it: it is the answer;
2. else an open lead of the contact — the lead id stored on the contact, then one with the same phone
   (``phone_sanitized``, E.164), then the same e-mail — is updated: tags added, a note posted in its chatter;
3. else a lead is created (with the marker in its description).

The lead id is stored on the contact (``contacts.odoo_lead_id``) with an activity event carrying the lead's link,
so the contact panel, the Visão 360 and the activity feed show it. A failure after the last try is recorded as an
activity event with its reason. The client (``workbench/services/odoo_client.py``) is the only module that knows
the wire protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.services.auth import Actor
from workbench.services.contact_card import odoo_lead
from workbench.services.odoo_client import DEFAULT_TIMEOUT_S, OdooClient, OdooError, lead_url
from workbench.services.outside_calls import FunctionExecutor, OutsideCallView, RetryLater, register
from workbench.services.secrets import hint as secret_hint
from workbench.services.secrets import integration_row
from workbench.store.crypto import decrypt_secret, encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, AISummary, Contact, FunnelRun, Integration
from workbench.store.text import clean_json

KIND = "odoo"
MAX_TAGS = 20
PUSH_TIMEOUT_S = 20.0
"""Each XML-RPC call of a push waits at most this long."""


class OdooSettings(BaseModel):
    """Where the workspace's Odoo is and what every pushed lead gets by default (ids are Odoo's)."""

    url: str = Field(max_length=500)
    database: str = Field(min_length=1, max_length=128)
    login: str = Field(min_length=1, max_length=254)
    team_id: int | None = Field(None, ge=1)
    user_id: int | None = Field(None, ge=1)
    stage_id: int | None = Field(None, ge=1)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    source: str = Field("WhatsApp", max_length=64)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError("url")
        return value

    @field_validator("database", "login", "source")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = list(dict.fromkeys(t.strip()[:64] for t in value if t and t.strip()))
        return tags


@dataclass(frozen=True)
class OdooConfig:
    """What the settings page shows: the settings and the API key's last 4 characters (never the key)."""

    settings: OdooSettings
    key_hint: str


@dataclass(frozen=True)
class ConnectionReport:
    """The outcome of *Testar conexão*: ``problem`` is None when everything a push needs works, else one of
    ``OdooError``'s kinds (``unreachable``, ``timeout``, ``database``, ``auth``, ``no_crm``, ``access``, ``fault``,
    ``protocol``) or ``not_configured``; ``version`` is the server's, when it answered; ``choices``: the sales
    teams, salespeople and stages found (``CHOICE_MODELS``), kept with the settings for the form's pickers."""

    problem: str | None
    version: str | None = None
    detail: str = ""
    choices: dict[str, list[tuple[int, str]]] | None = None

    @property
    def ok(self) -> bool:
        """Whether the connection is ready for pushes."""
        return self.problem is None


def _row(session: Session, workspace_id: int) -> Integration | None:
    return integration_row(session, workspace_id, KIND)


def get_config(actor: Actor) -> OdooConfig | None:
    """The workspace's Odoo connection without its key (admins); None when never saved."""
    actor.require("admin")
    with session_scope() as session:
        row = _row(session, actor.workspace_id)
        if row is None:
            return None
        return OdooConfig(OdooSettings.model_validate(row.config), str(row.config.get("key_hint") or ""))


def save_config(actor: Actor, values: dict[str, Any], api_key: str | None = None) -> OdooConfig:
    """Store the connection (admins). An empty ``api_key`` keeps the stored one; the first save needs one."""
    actor.require("admin")
    try:
        settings = OdooSettings.model_validate(clean_json(values))
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "url"
        raise InvalidInput(str(exc), key=f"error.odoo.{field}" if field in ("url", "database", "login") else
                           "error.odoo.invalid") from exc
    key = (api_key or "").strip()
    if len(key) > 4096:
        raise InvalidInput("key too long", key="error.odoo.key")
    with session_scope() as session:
        row = _row(session, actor.workspace_id)
        if row is None and not key:
            raise InvalidInput("no key", key="error.odoo.key")
        hint = secret_hint(key) if key else str((row.config if row else {}).get("key_hint") or "")
        config = settings.model_dump() | {"key_hint": hint, "choices": (row.config if row else {}).get("choices") or {}}
        if row is None:
            session.add(Integration(workspace_id=actor.workspace_id, kind=KIND, name=KIND, config=config,
                                    secret=encrypt_secret(key)))
        else:
            row.config = config
            if key:
                row.secret = encrypt_secret(key)
    return OdooConfig(settings, hint)


def _client(session: Session, workspace_id: int, timeout: float) -> tuple[OdooClient, OdooSettings] | None:
    row = _row(session, workspace_id)
    if row is None or row.secret is None:
        return None
    settings = OdooSettings.model_validate(row.config)
    return OdooClient(settings.url, settings.database, settings.login, decrypt_secret(row.secret),
                      timeout=timeout), settings


def test_connection(actor: Actor, *, timeout: float = DEFAULT_TIMEOUT_S) -> ConnectionReport:
    """*Testar conexão* (admins): version, database, login, CRM app, read and create rights on ``crm.lead``."""
    actor.require("admin")
    with session_scope() as session:
        found = _client(session, actor.workspace_id, timeout)
    if found is None:
        return ConnectionReport("not_configured")
    client, _settings = found
    version = None
    try:
        info = client.version()
        version = str(info.get("server_version") or "?")[:40]
        client.authenticate()
        for operation in ("read", "create"):
            if client.execute("crm.lead", "check_access_rights", operation, raise_exception=False) is not True:
                return ConnectionReport("access", version, operation)
    except OdooError as exc:
        return ConnectionReport(exc.kind, version, exc.detail)
    choices = _choices(client)
    with session_scope() as session:
        row = _row(session, actor.workspace_id)
        if row is not None:
            row.config = {**row.config, "choices": {k: [list(c) for c in v] for k, v in choices.items()}}
    return ConnectionReport(None, version, choices=choices)


CHOICE_MODELS = {"team_id": "crm.team", "user_id": "res.users", "stage_id": "crm.stage"}
MAX_CHOICES = 200


def _choices(client: OdooClient) -> dict[str, list[tuple[int, str]]]:
    """What the form offers for each default: (id, name) of Odoo's teams, users and stages; a model the user may
    not read gives an empty list (the id can still be typed)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for field, model in CHOICE_MODELS.items():
        try:
            rows = client.execute(model, "search_read", [], fields=["name"], limit=MAX_CHOICES)
        except OdooError:
            rows = []
        found[field] = [(int(r["id"]), str(r.get("name") or r["id"])[:120]) for r in rows
                        if isinstance(r, dict) and isinstance(r.get("id"), int)]
    return found


def stored_choices(actor: Actor) -> dict[str, list[tuple[int, str]]]:
    """The choices the last successful *Testar conexão* found (admins); empty lists before one."""
    actor.require("admin")
    with session_scope() as session:
        row = _row(session, actor.workspace_id)
        raw = (row.config.get("choices") if row is not None else None) or {}
    return {field: [(int(i), str(n)) for i, n in raw.get(field) or []] for field in CHOICE_MODELS}


def contact_lead(actor: Actor, contact_id: int) -> tuple[int, str] | None:
    """The contact's Odoo lead id and its link; None when it has none (tests and scripts: pages read it from the
    contact's card, ``contact_card.odoo_lead``)."""
    with session_scope() as session:
        lead_id = session.scalar(select(Contact.odoo_lead_id).where(Contact.id == contact_id,
                                                                    Contact.workspace_id == actor.workspace_id))
        found = odoo_lead(session, actor.workspace_id, lead_id)
        return (found["id"], found["url"]) if found else None


# -- the push -----------------------------------------------------------------------------------------------------


def marker(call_id: int | str) -> str:
    """The text in a created lead's description that says which push created it."""
    return f"(envio wb-{call_id})"


def _e164(phone: str) -> str | None:
    digits = "".join(c for c in phone or "" if c.isdigit())
    return f"+{digits}" if len(digits) >= 8 else None


_OPEN = ("probability", "<", 100)


def _find_open(client: OdooClient, known_id: int | None, phone: str | None, email: str | None) -> int | None:
    """The contact's open lead: the stored id, then by phone, then by e-mail."""
    searches = []
    if known_id:
        searches.append([("id", "=", int(known_id)), _OPEN])
    if e164 := _e164(phone or ""):
        searches.append([("phone_sanitized", "=", e164), _OPEN])
    if email:
        searches.append([("email_from", "=ilike", email), _OPEN])
    for domain in searches:
        found = client.execute("crm.lead", "search", domain, limit=1)
        if found:
            return int(found[0])
    return None


def _named_ids(client: OdooClient, model: str, names: list[str]) -> list[int]:
    """Ids of the records named ``names`` (case-insensitive), creating the missing ones."""
    ids = []
    for name in names:
        found = client.execute(model, "search", [("name", "=ilike", name)], limit=1)
        ids.append(int(found[0]) if found else int(client.execute(model, "create", {"name": name})))
    return ids


def push(client: OdooClient, settings: OdooSettings, call_id: int | str, lead: dict[str, Any],
         known_id: int | None) -> tuple[int, str]:
    """Create or update the contact's lead; returns (lead id, ``created``/``updated``/``already``).

    ``lead``: the step's rendered values (``title``, ``contact_name``, ``email``, ``phone``, ``company``,
    ``description``, ``tags``, ``team_id``, ``user_id``, ``expected_revenue``). Raises ``OdooError``.
    """
    mark = marker(call_id)
    done = client.execute("crm.lead", "search", [("description", "ilike", mark)], limit=1)
    if done:
        return int(done[0]), "already"
    tags = list(dict.fromkeys([*settings.tags, *(lead.get("tags") or [])]))[:MAX_TAGS]
    tag_ids = _named_ids(client, "crm.tag", tags) if tags else []
    existing = _find_open(client, known_id, lead.get("phone"), lead.get("email"))
    description = str(lead.get("description") or "")
    if existing is not None:
        values: dict[str, Any] = {}
        if tag_ids:
            values["tag_ids"] = [(4, tag_id) for tag_id in tag_ids]
        if lead.get("expected_revenue"):
            values["expected_revenue"] = lead["expected_revenue"]
        if values:
            client.execute("crm.lead", "write", [existing], values)
        body = "\n".join(part for part in (str(lead.get("title") or ""), description) if part)
        client.execute("crm.lead", "message_post", [existing], body=body or mark)
        return existing, "updated"
    values = {"name": str(lead.get("title") or lead.get("contact_name") or lead.get("phone") or "WhatsApp"),
              "contact_name": lead.get("contact_name") or False, "email_from": lead.get("email") or False,
              "phone": lead.get("phone") or False, "partner_name": lead.get("company") or False,
              "description": f"{description}\n\n{mark}" if description else mark}
    if tag_ids:
        values["tag_ids"] = [(6, 0, tag_ids)]
    for name in ("team_id", "user_id"):
        chosen = lead.get(name) or getattr(settings, name)
        if chosen:
            values[name] = int(chosen)
    if settings.stage_id:
        values["stage_id"] = settings.stage_id
    if lead.get("expected_revenue"):
        values["expected_revenue"] = lead["expected_revenue"]
    if settings.source:
        try:
            values["source_id"] = _named_ids(client, "utm.source", [settings.source])[0]
        except OdooError as exc:
            if exc.retryable:
                raise
            # no rights on UTM sources: the lead matters more than its source
    return int(client.execute("crm.lead", "create", values)), "created"


def _record(session: Session, workspace_id: int, contact_id: int, kind: str, data: dict[str, Any]) -> None:
    session.add(ActivityEvent(workspace_id=workspace_id, kind=kind, subject_type="contact", subject_id=contact_id,
                              data={"source": "odoo", **data}))


def push_lead(workspace_id: int, contact_id: int, call_id: int | str, lead: dict[str, Any], *,
              final: bool) -> dict[str, Any]:
    """Run one try of a push and record its outcome; the JSON-able result for the step's ``on_result``.

    Args:
        final: this is the last try: a retryable failure is then recorded and returned as a failure.

    Raises:
        OdooError: a retryable failure (Odoo down or slow) on a try that is not the last.
    """
    with session_scope() as session:
        found = _client(session, workspace_id, PUSH_TIMEOUT_S)
        row = session.execute(select(Contact.odoo_lead_id, Contact.name, Contact.push_name, Contact.phone,
                                     Contact.email, Contact.company)
                              .where(Contact.id == contact_id, Contact.workspace_id == workspace_id)).first()
        summary = session.scalar(select(AISummary.text).where(AISummary.contact_id == contact_id,
                                                              AISummary.workspace_id == workspace_id))
    if row is None:
        return {"ok": False, "error": "contact", "kind": "failed"}
    known_id = row.odoo_lead_id
    # a mapping left empty takes the contact's own value
    lead = dict(lead)
    if lead.pop("include_ai_summary", False) and summary:
        description = str(lead.get("description") or "").strip()
        lead["description"] = "\n\n".join(part for part in (description, t("odoo.ai_summary", text=summary)) if part)
    for key, own in (("contact_name", row.name or row.push_name), ("phone", row.phone), ("email", row.email),
                     ("company", row.company)):
        if not str(lead.get(key) or "").strip():
            lead[key] = own or ""
    if found is None:
        return _failed(workspace_id, contact_id, "not_configured")
    client, settings = found
    try:
        lead_id, action = push(client, settings, call_id, lead, known_id)
    except OdooError as exc:
        if exc.retryable and not final:
            raise
        return _failed(workspace_id, contact_id, exc.kind, exc.detail)
    url = lead_url(settings.url, lead_id)
    with session_scope() as session:
        session.execute(update(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
                        .values(odoo_lead_id=lead_id))
        _record(session, workspace_id, contact_id, "odoo_lead_updated" if action == "updated" else "odoo_lead_created",
                {"lead_id": lead_id, "url": url})
    return {"ok": True, "lead_id": lead_id, "action": action, "url": url}


def _failed(workspace_id: int, contact_id: int, kind: str, detail: str = "") -> dict[str, Any]:
    with session_scope() as session:
        _record(session, workspace_id, contact_id, "odoo_push_failed", {"reason": kind})
    return {"ok": False, "error": kind, "detail": detail, "kind": "failed"}


# -- the outside-calls executor (service "odoo") ------------------------------------------------------------------

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 30.0
MAX_BACKOFF_S = 480.0
"""Odoo down or slow: 6 tries, 30 s, 1, 2, 4 and 8 min apart — about 15 minutes — then the step takes *falha*."""


def run_call(call: OutsideCallView) -> dict[str, Any]:
    """One try of an "Enviar para Odoo" push for the run's contact; the call id marks the lead it creates."""
    with session_scope() as session:
        contact_id = session.scalar(select(FunnelRun.contact_id).where(FunnelRun.id == call.run_id))
    if contact_id is None:
        return {"ok": False, "error": "contact", "kind": "failed"}
    try:
        return push_lead(call.workspace_id, contact_id, call.id, dict(call.request), final=call.attempt >= MAX_ATTEMPTS)
    except OdooError as exc:
        raise RetryLater(exc.kind, exc.kind) from None


EXECUTOR = FunctionExecutor(run_call, max_attempts=MAX_ATTEMPTS, timeout_s=10 * PUSH_TIMEOUT_S, base_s=BACKOFF_BASE_S,
                            max_backoff_s=MAX_BACKOFF_S)
register("odoo", EXECUTOR)
