"""SQLAlchemy 2 models: the whole product's schema. PostgreSQL is the source of truth.

Every product row carries ``workspace_id`` (directly, or through the one parent it cannot exist
without) so services can check isolation with one filter. Schema changes go through Alembic
(``workbench/migrations``).
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    text as sql,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from workbench.base.clock import DEFAULT_TIMEZONE

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "supervisor", "agent")
CONVERSATION_STATUSES = ("open", "pending", "closed")
MESSAGE_STATUSES = ("received", "pending", "sent", "delivered", "read", "failed")
OUTBOX_STATUSES = ("pending", "sent", "failed")
RUN_STATUSES = ("active", "waiting", "paused", "completed", "failed", "stopped")
# texto, número, data, lista de opções, sim/não, e-mail, telefone, URL
FIELD_TYPES = ("text", "number", "date", "choice", "boolean", "email", "phone", "url")
CONTACT_JOB_KINDS = ("bulk", "import")
CONTACT_JOB_STATUSES = ("queued", "running", "done", "failed")
AI_PRESETS = ("openai", "gemini", "cloudflare", "custom")
AI_TOOL_MODES = ("auto", "tools", "json")  # auto: what *Testar conexão* found
OUTSIDE_CALL_STATUSES = ("pending", "running", "done", "failed", "stale")
AVAILABILITIES = ("available", "away", "offline")  # Disponível, Ausente, Offline (workbench/services/routing.py)


MAX_ID = 2**63 - 1
"""The largest id a row can have (ids are BIGINT)."""


def is_row_id(value: Any) -> bool:
    """Whether ``value`` can be a row's id: a positive BIGINT. Ids from imported definitions or forms are checked
    with this before a lookup, so a string or a 400-digit number is "not found" rather than a database error."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB, datetime: DateTime(timezone=True)}


def _pk() -> Mapped[int]:
    return mapped_column(BigInteger, primary_key=True, autoincrement=True)


def _ws() -> Mapped[int]:
    return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_TIMEZONE)
    created_at: Mapped[datetime] = _created()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = _pk()
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=sql("true"))
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()


class WorkspaceMember(Base):
    __tablename__ = "workspace_members"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),
                      CheckConstraint(_in("availability", AVAILABILITIES), name="availability"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    # chosen in the sidebar; someone the panel has not seen for routing.IDLE_OFFLINE counts as offline
    availability: Mapped[str] = mapped_column(String(16), server_default="available")
    last_seen_at: Mapped[datetime | None]
    last_assigned_at: Mapped[datetime | None]  # automatic distribution: ties in load go to who waited longest
    created_at: Mapped[datetime] = _created()


class AuthSession(Base):
    """A login: the browser keeps the token, we keep only its SHA-256."""

    __tablename__ = "auth_sessions"
    id: Mapped[int] = _pk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int] = _ws()
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Recent login attempts of one e-mail from one client address, or of one address whatever the e-mails
    (``workbench.services.auth``).

    ``key`` is a hash of both, so neither typed e-mails (nor a password typed in the e-mail field) nor client
    addresses are stored. Rows are forgotten a day after their last attempt.
    """

    __tablename__ = "login_throttles"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    last_attempt_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(120))
    auto_assign: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))  # Distribuir automaticamente
    created_at: Mapped[datetime] = _created()


class TeamMember(Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class Instance(Base):
    """A WhatsApp number. ``desired_state`` is what the supervisor reconciles towards."""

    __tablename__ = "instances"
    __table_args__ = (
        CheckConstraint(_in("transport", ("sandbox", "neonize")), name="transport"),
        CheckConstraint(_in("desired_state", ("running", "stopped", "removed")), name="desired_state"),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(120))
    transport: Mapped[str] = mapped_column(String(16))
    desired_state: Mapped[str] = mapped_column(String(16), server_default="running")
    phone: Mapped[str | None] = mapped_column(String(32))
    push_name: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(32), server_default="disconnected")  # last state seen by a worker
    state_reason: Mapped[str | None] = mapped_column(Text)
    state_at: Mapped[datetime | None]
    settings: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created()
    removed_at: Mapped[datetime | None]


# Vowels with each of Portuguese's accents, then ç and ñ; written decomposed (letter + combining mark) and composed
# here, so this module holds no Portuguese-looking literal (tests/test_pages_i18n.py).
_MARKS = "\u0301\u0300\u0302\u0303\u0308"  # acute, grave, circumflex, tilde, diaeresis
ACCENTED = unicodedata.normalize("NFC", "".join(v + mark for v in "aeiou" for mark in _MARKS) + "c\u0327n\u0303")
UNACCENTED = "".join(v * len(_MARKS) for v in "aeiou") + "cn"
CONTACT_SEARCH_TEXT = (
    "translate(lower(coalesce(name, '') || ' ' || coalesce(push_name, '') || ' ' || coalesce(email, '') || ' ' || "
    f"coalesce(company, '') || ' ' || jsonb_path_query_array(custom_data, '$.*')::text), '{ACCENTED}', '{UNACCENTED}')"
)
"""What the Contatos search looks in (names, e-mail, company and field values, not field names), lower case and
without accents; kept by PostgreSQL (a generated column), so every writer keeps it right."""


LEGACY_LANE = -1
"""The ``drain_lanes.lane`` of a number's single inbound stream of before lanes (``wb:in:{id}``)."""


class DrainLane(Base):
    """The fencing token of one inbound lane of a number (``engine/worker/jobs.py``).

    A drain that takes lane ``lane`` of the number adds one to ``epoch``; every transaction that stores the lane's
    events locks this row (``FOR NO KEY UPDATE``) and compares the value it took. Lane -1 is the number's single
    stream of before lanes (``wb:in:{id}``), drained first after an upgrade.
    """

    __tablename__ = "drain_lanes"
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    lane: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("instance_id", "phone"),
        Index("ix_contacts_workspace_name", "workspace_id", "name"),
        # the Contatos list's sorts (workbench/services/contact_list.py, migration 0006)
        Index("ix_contacts_list_name", "workspace_id", sql("lower(COALESCE(name, push_name, phone))"), "id"),
        Index("ix_contacts_list_phone", "workspace_id", "phone", "id"),
        Index("ix_contacts_list_created", "workspace_id", "created_at", "id"),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(32))
    jid: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(255))
    push_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254))
    company: Mapped[str | None] = mapped_column(String(255))
    custom_data: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    last_inbound_at: Mapped[datetime | None]
    search_text: Mapped[str] = mapped_column(Text, Computed(CONTACT_SEARCH_TEXT, persisted=True))
    # The contact's lead in the workspace's Odoo (step "Enviar para Odoo"); the next push updates it.
    odoo_lead_id: Mapped[int | None] = mapped_column(BigInteger)


class ContactField(Base):
    """A workspace's typed contact field (Configurações › Campos); values live in ``contacts.custom_data[key]``."""

    __tablename__ = "contact_fields"
    __table_args__ = (
        UniqueConstraint("workspace_id", "key"),
        CheckConstraint(_in("type", FIELD_TYPES), name="type"),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[list[Any]] = mapped_column(server_default=sql("'[]'::jsonb"))  # choices of a "choice" field
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = _created()


class Segment(Base):
    """A saved contact filter (Contatos › Segmentos)."""

    __tablename__ = "segments"
    __table_args__ = (Index("uq_segments_workspace_lower_name", "workspace_id", sql("lower(name)"), unique=True),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(120))
    filter: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class ContactJob(Base):
    """A long contact operation a worker runs (a bulk action, an import): what, how far, and how it ended.

    ``done`` is the resume cursor: rows are written in batches, each batch in the transaction that moves
    ``done`` past it, so a job killed mid-way resumes after its last committed batch without duplicates.
    """

    __tablename__ = "contact_jobs"
    __table_args__ = (
        CheckConstraint(_in("kind", CONTACT_JOB_KINDS), name="kind"),
        CheckConstraint(_in("status", CONTACT_JOB_STATUSES), name="status"),
        Index("ix_contact_jobs_workspace", "workspace_id", sql("created_at DESC")),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    file_name: Mapped[str | None] = mapped_column(String(255))
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ContactJobError(Base):
    """One row a job could not take, with its line and column and a pt-BR reason (the failed-rows file)."""

    __tablename__ = "contact_job_errors"
    __table_args__ = (Index("ix_contact_job_errors_job_line", "job_id", "line"),)
    id: Mapped[int] = _pk()
    job_id: Mapped[int] = mapped_column(ForeignKey("contact_jobs.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(Text)
    row: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))


class Tag(Base):
    __tablename__ = "tags"
    # unique ignoring case: "vip" is the same tag as "VIP" (see workbench.services.runs.tag_contact)
    __table_args__ = (Index("uq_tags_workspace_lower_name", "workspace_id", sql("lower(name)"), unique=True),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(80))
    color: Mapped[str] = mapped_column(String(16), server_default="#64748b")
    created_at: Mapped[datetime] = _created()


class ContactTag(Base):
    __tablename__ = "contact_tags"
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = _created()


class Conversation(Base):
    """One thread per contact; closing and a new message reopen the same thread."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint(_in("status", CONVERSATION_STATUSES), name="status"),
        UniqueConstraint("contact_id"),
        # the inbox list: newest activity first within a workspace, filtered by status
        Index("ix_conversations_inbox", "workspace_id", "status", sql("last_message_at DESC")),
        # the Contatos list by last message (workbench/services/contact_list.py, migration 0006)
        Index("ix_conversations_list_last_message", "workspace_id",
              sql("COALESCE(last_message_at, '1970-01-01 00:00:00+00'::timestamptz)"), "contact_id"),
        Index("ix_conversations_agent", "agent_id", "status"),
        Index("ix_conversations_team", "team_id", "status"),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime | None]
    bot_paused: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))
    bot_paused_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    bot_paused_reason: Mapped[str | None] = mapped_column(String(32))  # agent | route | agent_reply
    bot_paused_until: Mapped[datetime | None]
    first_reply_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    last_message_direction: Mapped[str | None] = mapped_column(String(3))
    last_message_type: Mapped[str | None] = mapped_column(String(16))
    last_inbound_at: Mapped[datetime | None]
    unread_count: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = _created()
    closed_at: Mapped[datetime | None]


class Media(Base):
    """Metadata of a content-addressed file under ``<data_dir>/media``."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("workspace_id", "sha256"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    sha256: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    in_library: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))  # reusable in funnels
    created_at: Mapped[datetime] = _created()


class Funnel(Base):
    __tablename__ = "funnels"
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))
    priority: Mapped[int] = mapped_column(Integer, server_default="100")
    draft: Mapped[dict[str, Any]] = mapped_column(server_default=sql("""'{"nodes": [], "edges": []}'::jsonb"""))
    published_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("funnel_versions.id", ondelete="SET NULL", use_alter=True)
    )
    # Teste A/B e metas: {"kind": "step"|"tag", "node_id"|"tag": ..., "days": N} (workbench/services/funnel_goals.py)
    goal: Mapped[dict[str, Any] | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class FunnelVersion(Base):
    __tablename__ = "funnel_versions"
    __table_args__ = (UniqueConstraint("funnel_id", "version"),)
    id: Mapped[int] = _pk()
    funnel_id: Mapped[int] = mapped_column(ForeignKey("funnels.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]]
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_at: Mapped[datetime] = _created()


class FunnelRun(Base):
    """Durable state of one conversation walking one funnel version."""

    __tablename__ = "funnel_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_funnel_runs_live", "conversation_id",
              postgresql_where=sql("status IN ('active','waiting','paused')")),
        Index("ix_funnel_runs_deadline", "wait_deadline", postgresql_where=sql("status = 'waiting'")),
        Index("ix_funnel_runs_funnel", "funnel_id", "status"),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    funnel_id: Mapped[int] = mapped_column(ForeignKey("funnels.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("funnel_versions.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    current_node: Mapped[str | None] = mapped_column(String(64))
    variables: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    wait_token: Mapped[str | None] = mapped_column(String(64))
    wait_deadline: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    ended_at: Mapped[datetime | None]


class FunnelEvent(Base):
    """One node execution: the drop-off data behind the funnel charts."""

    __tablename__ = "funnel_events"
    __table_args__ = (Index("ix_funnel_events_funnel_node", "funnel_id", "node_id"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    run_id: Mapped[int] = mapped_column(ForeignKey("funnel_runs.id", ondelete="CASCADE"), index=True)
    funnel_id: Mapped[int] = mapped_column(ForeignKey("funnels.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("funnel_versions.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    node_type: Mapped[str] = mapped_column(String(32))
    output: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # ok | waiting | error
    duration_ms: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created()


class OutsideCall(Base):
    """A funnel step's call to something outside (a model, an HTTP endpoint, Odoo), run away from the drain.

    Written with the run's wait in one transaction (``workbench/services/outside_calls.py``); ``id`` is the
    idempotency key an executor sends. ``status``: ``pending`` (waiting for its turn, or its next try at
    ``due_at``), ``running`` (a try started at ``started_at``; ``attempts`` counts tries *before* they run),
    ``done`` (an answer, success or definitive failure, in ``result``), ``failed`` (retryable errors until the
    last try) or ``stale`` (the run had moved on; nothing applied). ``applied_at`` is set in the transaction that
    applied the result to the run, so a result is applied at most once.
    """

    __tablename__ = "outside_calls"
    __table_args__ = (
        CheckConstraint(_in("status", OUTSIDE_CALL_STATUSES), name="status"),
        # the sweep's two questions: tries whose job was lost, results not yet applied
        Index("ix_outside_calls_open", "status", "due_at", postgresql_where=sql("status IN ('pending','running')")),
        Index("ix_outside_calls_unapplied", "finished_at",
              postgresql_where=sql("status IN ('done','failed') AND applied_at IS NULL")),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    run_id: Mapped[int] = mapped_column(ForeignKey("funnel_runs.id", ondelete="CASCADE"), index=True)
    wait_token: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    due_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("direction", ("in", "out")), name="direction"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        # WhatsApp redelivers after reconnects: the provider id makes storing idempotent.
        UniqueConstraint("instance_id", "wa_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        # the contact's activity feed: newest first by time, in cursor pages (workbench/services/contact_feed.py)
        Index("ix_messages_conversation_time", "conversation_id", "created_at", "id"),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    wa_id: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))
    type: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    quoted_wa_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    sent_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sent_by_funnel_id: Mapped[int | None] = mapped_column(ForeignKey("funnels.id", ondelete="SET NULL"))
    wa_timestamp: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    status_at: Mapped[datetime | None]


class Outbox(Base):
    """An outbound command, written in the same transaction as the message it sends."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
        Index("ix_outbox_pending", "created_at", postgresql_where=sql("status = 'pending'")),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    command: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    publish_count: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    published_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class Note(Base):
    """A note on a contact, or (``kind`` "thread") a private note in its conversation's thread; never sent."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_conversation", "conversation_id", "created_at"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), server_default="contact")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime | None]


class QuickReply(Base):
    """A workspace's saved reply (Respostas rápidas): typed as ``/shortcut`` in the inbox, rendered as a template."""

    __tablename__ = "quick_replies"
    __table_args__ = (
        Index("uq_quick_replies_workspace_lower_shortcut", "workspace_id", sql("lower(shortcut)"), unique=True),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Notification(Base):
    """In-app notice to an agent or a team (e.g. a funnel's 'notify human' step)."""

    __tablename__ = "notifications"
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    read_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()


class ActivityEvent(Base):
    """Audit and timeline: who did what to which row."""

    __tablename__ = "activity_events"
    # a subject's events newest first: the contact's activity feed pages by (created_at, id) on it
    __table_args__ = (Index("ix_activity_subject_time", "workspace_id", "subject_type", "subject_id", "created_at",
                            "id"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created()


class Integration(Base):
    """An outside service (LLM, Odoo, webhook); ``secret`` is Fernet-encrypted."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    config: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class WorkspaceSecret(Base):
    """A named secret of a workspace (webhook tokens, signing keys): ``value`` is Fernet-encrypted and never shown
    again; ``hint`` keeps its last 4 characters so people can tell secrets apart."""

    __tablename__ = "workspace_secrets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    hint: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Setting(Base):
    """Per-workspace settings (business hours, default reply, ...)."""

    __tablename__ = "settings"
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AIProvider(Base):
    """A named OpenAI-compatible chat provider of a workspace (Configurações › IA); ``api_key`` is Fernet-encrypted
    and only its last 4 characters are ever shown again. At most one per workspace is the default."""

    __tablename__ = "ai_providers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint(_in("preset", AI_PRESETS), name="preset"),
        CheckConstraint(_in("tool_mode", AI_TOOL_MODES), name="tool_mode"),
        Index("uq_ai_providers_default", "workspace_id", unique=True, postgresql_where=sql("is_default")),
    )
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(120))
    preset: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(String(500))
    model: Mapped[str] = mapped_column(String(200))
    api_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_last4: Mapped[str | None] = mapped_column(String(4))
    config: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))  # preset extras (account id)
    is_default: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))
    temperature: Mapped[float] = mapped_column(Float, server_default="0.3")
    timeout_s: Mapped[float] = mapped_column(Float, server_default="30")
    tool_mode: Mapped[str] = mapped_column(String(8), server_default="auto")
    supports_tools: Mapped[bool | None] = mapped_column(Boolean)  # found by *Testar conexão*; None: never tested
    tested_at: Mapped[datetime | None]
    test_latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AIUsage(Base):
    """One model call: tokens, latency, outcome and cost estimate (the monthly budget sums these). Never a key,
    never a prompt or an answer."""

    __tablename__ = "ai_usage"
    __table_args__ = (Index("ix_ai_usage_workspace_time", "workspace_id", "created_at"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("ai_providers.id", ondelete="SET NULL"))
    purpose: Mapped[str] = mapped_column(String(16))  # step | summary | test | chat
    model: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | an AIError kind
    prompt_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    total_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    latency_ms: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_estimate: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()


class AIUsageMonth(Base):
    """A workspace's AI use per calendar month (in its time zone) and purpose, kept up to date with every
    ``ai_usage`` row, so the budget check before each call reads a few rows instead of summing the month."""

    __tablename__ = "ai_usage_months"
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # the month's first day
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    total_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cost_estimate: Mapped[float] = mapped_column(Float, server_default="0")


class AISummary(Base):
    """The *Resumo da IA* of a contact's conversation, with the last message it covers."""

    __tablename__ = "ai_summaries"
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    up_to_message_id: Mapped[int | None] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EntryLink(Base):
    """A Links de entrada row: a ``wa.me`` link to one of the workspace's numbers whose pre-filled message carries
    ``code``; a contact whose first message holds the code is attributed to it (``EntryLinkContact``)."""

    __tablename__ = "entry_links"
    __table_args__ = (UniqueConstraint("workspace_id", "code"),)
    id: Mapped[int] = _pk()
    workspace_id: Mapped[int] = _ws()
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(80))
    utm: Mapped[dict[str, Any]] = mapped_column(server_default=sql("'{}'::jsonb"))
    message: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(String(16))
    contacts_count: Mapped[int] = mapped_column(Integer, server_default="0")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()


class EntryLinkContact(Base):
    """A contact's attribution to the entry link its first message came through: one per contact, written once."""

    __tablename__ = "entry_link_contacts"
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[int] = _ws()
    link_id: Mapped[int] = mapped_column(ForeignKey("entry_links.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created()
