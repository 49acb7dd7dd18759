"""The Contatos list: search, combinable filters, sorting, server-side pages, and saved filters (segments).

Who sees what: admins and supervisors list every contact of the workspace (with or without a conversation);
agents list the contacts whose conversation they can see (``workbench.services.conversations.visible``). Bulk
actions (``workbench.services.contact_bulk``) and exports (``workbench.services.contact_export``) select their rows
through ``matching`` here, so the three can never disagree on who is in scope.

Pages are keyset pages: a page is the ``limit`` rows after a cursor (the sort value and id of the previous page's
last row), so a page deep in a 100 000-contact list costs what the first one costs — no OFFSET walks the rows
before it. One statement reads a page: the inner query picks the page's ids in order (indexes in migration 0006
serve each sort), the outer one fetches tags, responsible, number and current funnel for those rows only. The
total is counted only when asked and stops at ``COUNT_CAP``.

Custom field conditions are typed by the workspace's ``ContactField`` definitions; a key without a definition is
text. Values in ``custom_data`` are whatever people and imports typed, so every comparison is written to never
fail on a bad value: a number is compared only when the value looks like one, a date only when it reads as
``AAAA-MM-DD`` or ``DD/MM/AAAA``; anything else simply does not match.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import (
    ColumnElement,
    Integer,
    Numeric,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP, aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.services import conversations
from workbench.services.auth import Actor
from workbench.services.runs import LIVE
from workbench.store.db import session_scope
from workbench.store.models import (
    ACCENTED,
    UNACCENTED,
    Contact,
    ContactField,
    ContactTag,
    Conversation,
    Funnel,
    FunnelRun,
    Instance,
    Segment,
    Tag,
    Team,
    User,
    Workspace,
    WorkspaceMember,
    is_row_id,
)
from workbench.store.text import CONTACT_FIELD_KEY, MAX_SEARCH_CHARS, clean_text, like_pattern

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
COUNT_CAP = 10_000
"""The count stops here: the page shows "10.000+" instead of counting a huge list on every click."""
MAX_LIST_ITEMS = 50
"""Most tags per tag condition, and most field conditions, in one filter."""
MAX_SEGMENT_NAME = 120
SORTS = ("name", "phone", "created", "last_message")
OPERATORS = ("eq", "contains", "empty", "not_empty", "gt", "lt")
ORDERED_TYPES = ("number", "date")
TEXT_TYPES = ("text", "choice", "email", "phone", "url")
FUNNEL_STATES = ("in_now", "completed", "never")
# "no message yet" sorts as the oldest, never as NULL; a constant in the SQL, so the index of migration 0006 matches
_NEVER = literal_column("'1970-01-01 00:00:00+00'::timestamptz", TIMESTAMP(timezone=True))
_NUMBER = r"^-?[0-9]{1,15}([.,][0-9]{1,6})?$"
_PLAIN = str.maketrans(ACCENTED, UNACCENTED)
_COMPARE = {"eq": "=", "gt": ">", "lt": "<"}
_TRUE = ("true", "sim", "s", "yes", "1", "verdadeiro")


class FieldCondition(BaseModel):
    """One condition on a custom field: ``key`` ``op`` ``value`` (no value for empty / not_empty)."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=64)
    op: Literal["eq", "contains", "empty", "not_empty", "gt", "lt"]
    value: str | None = Field(default=None, max_length=1000)

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        if not CONTACT_FIELD_KEY.match(key):
            raise ValueError("field key")
        return key


class ContactFilter(BaseModel):
    """What the Contatos list shows: every part set here must hold (they combine with E).

    Tags are matched by name, ignoring case. Dates are days in the workspace's time zone, both ends included.
    """

    model_config = ConfigDict(extra="forbid")
    search: str = Field(default="", max_length=MAX_SEARCH_CHARS)
    tags_any: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tags_all: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tags_none: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    fields: list[FieldCondition] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    agent_id: int | None = None
    team_id: int | None = None
    unassigned: bool = False
    instance_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None
    last_message_from: date | None = None
    last_message_to: date | None = None
    funnel_id: int | None = None
    funnel_state: Literal["in_now", "completed", "never"] = "in_now"

    @field_validator("search")
    @classmethod
    def _search(cls, text: str) -> str:
        return clean_text(text)[0].strip()

    @field_validator("tags_any", "tags_all", "tags_none")
    @classmethod
    def _tags(cls, names: list[str]) -> list[str]:
        return [name for name in (" ".join(clean_text(n)[0].split())[:80] for n in names) if name]


def parse_filter(data: dict[str, Any] | ContactFilter | None) -> ContactFilter:
    """A ``ContactFilter`` from a dict (a form, a stored segment); bad input is ``InvalidInput`` in pt-BR."""
    if isinstance(data, ContactFilter):
        return data
    try:
        return ContactFilter.model_validate(data or {})
    except ValidationError:
        raise InvalidInput("contact filter", key="error.contact_filter") from None


# -- the query ------------------------------------------------------------------------------------------------


def _sort_value(sort: str) -> ColumnElement[Any]:
    """The expression a sort orders by (never NULL, so keyset comparisons hold); each has its index (0006)."""
    if sort == "name":
        return func.lower(func.coalesce(Contact.name, Contact.push_name, Contact.phone))
    if sort == "phone":
        return Contact.phone
    if sort == "created":
        return Contact.created_at
    return func.coalesce(Conversation.last_message_at, _NEVER)


def _day_start(day: date, workspace_id: int) -> ColumnElement[Any]:
    """The first instant of ``day`` in the workspace's zone (a constant for the planner: indexes still serve)."""
    zone = select(Workspace.timezone).where(Workspace.id == workspace_id).scalar_subquery()
    return func.timezone(zone, cast(literal(day.isoformat()), TIMESTAMP()))


def _between(column: ColumnElement[Any], start: date | None, end: date | None, workspace_id: int) -> list[Any]:
    conditions = []
    if start is not None:
        conditions.append(column >= _day_start(start, workspace_id))
    if end is not None:
        conditions.append(column < _day_start(end + timedelta(days=1), workspace_id))
    return conditions


def _tag_ids(workspace_id: int, names: list[str]) -> Select:
    return select(Tag.id).where(Tag.workspace_id == workspace_id,
                                func.lower(Tag.name).in_([name.lower() for name in names]))


def _has_tags(workspace_id: int, names: list[str]) -> ColumnElement[bool]:
    return exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag_id.in_(_tag_ids(workspace_id, names)))


def _field_condition(cond: FieldCondition, field_type: str) -> ColumnElement[bool]:
    raw = Contact.custom_data[cond.key].astext
    text_value = func.coalesce(raw, "")
    if cond.op == "empty":
        return text_value == ""
    if cond.op == "not_empty":
        return text_value != ""
    if cond.value is None or not cond.value.strip():
        raise InvalidInput("field condition value", key="error.contact_filter_value")
    value = cond.value.strip()
    if cond.op in ("gt", "lt") and field_type not in ORDERED_TYPES:
        raise InvalidInput("ordered operator on text", key="error.contact_filter_operator")
    if cond.op == "contains" and field_type not in TEXT_TYPES:
        raise InvalidInput("contains on a non-text field", key="error.contact_filter_operator")
    if field_type == "number":
        if not re.match(_NUMBER, value):
            raise InvalidInput("number", key="error.contact_filter_number")
        looks = raw.op("~")(_NUMBER)
        # CASE keeps the cast from ever seeing a value that is not a number
        numeric = case((looks, cast(func.replace(raw, ",", "."), Numeric)), else_=None)
        return numeric.op(_COMPARE[cond.op])(literal(value.replace(",", "."), Numeric))
    if field_type == "date":
        day = _parse_day(value)
        return _stored_day(raw).op(_COMPARE[cond.op])(day.isoformat())
    if field_type == "boolean":
        truthy = value.lower() in _TRUE
        is_true = func.lower(text_value).in_(_TRUE)
        return is_true if truthy else and_(text_value != "", not_(is_true))
    if cond.op == "contains":
        return text_value.ilike(like_pattern(value))
    return func.lower(text_value) == value.lower()


def _stored_day(raw: ColumnElement[Any]) -> ColumnElement[Any]:
    """A stored date as ``AAAA-MM-DD`` text (ISO or Brazilian ``DD/MM/AAAA``), else NULL: compared as text, so a
    malformed day never raises."""
    return case(
        (raw.op("~")(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"), func.left(raw, 10)),
        (raw.op("~")(r"^[0-9]{2}/[0-9]{2}/[0-9]{4}"),
         func.substr(raw, 7, 4).concat("-").concat(func.substr(raw, 4, 2)).concat("-").concat(func.substr(raw, 1, 2))),
        else_=None,
    )


def _parse_day(value: str) -> date:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise InvalidInput("date", key="error.contact_filter_date")


def _field_types(session: Session, workspace_id: int, keys: set[str]) -> dict[str, str]:
    if not keys:
        return {}
    return dict(session.execute(select(ContactField.key, ContactField.type).where(
        ContactField.workspace_id == workspace_id, ContactField.key.in_(keys))).all())


def searchable(text: str) -> str:
    """Text as ``contacts.search_text`` holds it: lower case, without the accents of Portuguese."""
    return text.lower().translate(_PLAIN)


def _search(text: str) -> ColumnElement[bool]:
    """Name, WhatsApp name, e-mail, company or a field's value contains the text (case and accents ignored), or
    the phone contains its digits ("+55 (11) 98765-4321" finds 5511987654321)."""
    parts = [Contact.search_text.like(like_pattern(searchable(text)))]
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 3:
        parts.append(Contact.phone.like(like_pattern(digits)))
    return or_(*parts)


def matching(session: Session, actor: Actor, flt: ContactFilter, *, sort: str = "name",
             ids: list[int] | None = None) -> Select:
    """A select of ``Contact.id`` and the sort value (``sort_value``) of every contact the actor may see that
    ``flt`` lets through, without order or limit (pages, counts, bulk actions and exports build on it).
    ``ids`` narrows it to those contacts (a selection).

    Raises:
        InvalidInput: a condition that does not fit its field's type, a bad number or date.
        NotFound: an agent, team, number or funnel of the filter that is not the workspace's.
    """
    if sort not in SORTS:
        raise InvalidInput(sort, key="error.contact_filter")
    ws = actor.workspace_id
    query = select(Contact.id, _sort_value(sort).label("sort_value"))
    if actor.is_manager:
        query = query.outerjoin(Conversation, Conversation.contact_id == Contact.id).where(Contact.workspace_id == ws)
    else:
        query = conversations.visible(actor, query.join(Conversation, Conversation.contact_id == Contact.id))
        query = query.where(Contact.workspace_id == ws)
    conditions: list[Any] = []
    if ids is not None:
        conditions.append(Contact.id.in_([i for i in ids if is_row_id(i)]))
    if flt.search:
        conditions.append(_search(flt.search))
    if flt.tags_any:
        conditions.append(_has_tags(ws, flt.tags_any))
    for name in dict.fromkeys(n.lower() for n in flt.tags_all):
        conditions.append(_has_tags(ws, [name]))
    if flt.tags_none:
        conditions.append(not_(_has_tags(ws, flt.tags_none)))
    types = _field_types(session, ws, {c.key for c in flt.fields})
    conditions += [_field_condition(cond, types.get(cond.key, "text")) for cond in flt.fields]
    check_ids(session, actor, flt)
    if flt.unassigned:
        conditions.append(and_(Conversation.agent_id.is_(None), Conversation.team_id.is_(None)))
    if flt.agent_id is not None:
        conditions.append(Conversation.agent_id == flt.agent_id)
    if flt.team_id is not None:
        conditions.append(Conversation.team_id == flt.team_id)
    if flt.instance_id is not None:
        conditions.append(Contact.instance_id == flt.instance_id)
    conditions += _between(Contact.created_at, flt.created_from, flt.created_to, ws)
    conditions += _between(Conversation.last_message_at, flt.last_message_from, flt.last_message_to, ws)
    if flt.funnel_id is not None:
        runs = exists().where(FunnelRun.contact_id == Contact.id, FunnelRun.funnel_id == flt.funnel_id)
        if flt.funnel_state == "in_now":
            conditions.append(runs.where(FunnelRun.status.in_(LIVE)))
        elif flt.funnel_state == "completed":
            conditions.append(runs.where(FunnelRun.status == "completed"))
        else:
            conditions.append(not_(runs))
    return query.where(*conditions)


def check_ids(session: Session, actor: Actor, flt: ContactFilter) -> None:
    """Ids in a filter must be the workspace's (a stale segment, a crafted request): else ``NotFound``."""
    if flt.agent_id is not None and (not is_row_id(flt.agent_id) or session.get(
            WorkspaceMember, (actor.workspace_id, flt.agent_id)) is None):
        raise NotFound("agent", key="error.agent_not_found")
    for value, model, key in ((flt.team_id, Team, "error.team_not_found"),
                              (flt.instance_id, Instance, "error.instance_not_found"),
                              (flt.funnel_id, Funnel, "error.funnel_not_found")):
        row = session.get(model, value) if value is not None and is_row_id(value) else None
        if value is not None and (row is None or row.workspace_id != actor.workspace_id):
            raise NotFound(model.__tablename__, key=key)


def selected(session: Session, actor: Actor, ids: list[int], limit: int) -> list[int]:
    """A selection's ids, sorted and checked: more than ``limit`` is ``InvalidInput``, and any id the actor may
    not see (another workspace's, a conversation out of an agent's scope, a deleted contact) is ``NotFound``."""
    wanted = sorted(set(ids))
    if len(wanted) > limit:
        raise InvalidInput("too many rows", key="error.bulk_too_many", max=limit)
    found = list(session.scalars(matching(session, actor, ContactFilter(), ids=wanted)
                                 .with_only_columns(Contact.id).order_by(Contact.id)))
    if found != wanted:
        raise NotFound("contact", key="error.contact_not_found")
    return found


def page_query(session: Session, actor: Actor, flt: ContactFilter, *, sort: str = "name", descending: bool = False,
               after: tuple[Any, int] | None = None, limit: int = PAGE_SIZE, ids: list[int] | None = None) -> Select:
    """The one statement that reads a page of rows (see ``list_contacts`` for the row's keys, plus ``sort_value``
    and ``total``).

    Without conditions, the page walks the sort's index from the cursor (``total`` is None: ``count_matching``
    counts the workspace cheaply). With any condition, a search above all, the planner cannot tell whether it
    lets through few rows or many, and walking the index would then visit every row in index order; so the
    matches are collected in one scan, the page is sorted out of them, and ``total`` counts them in the same
    statement.
    """
    key = _sort_value(sort)
    key_type = TIMESTAMP(timezone=True) if sort == "last_message" else key.type
    bound = None if after is None else tuple_(literal(after[0], key_type), literal(after[1]))
    if flt.model_dump(exclude_defaults=True) or ids is not None:
        hits = matching(session, actor, flt, sort=sort, ids=ids).cte("hits").prefix_with("MATERIALIZED")
        chosen, row_id, value = select(hits.c.id, hits.c.sort_value), hits.c.id, hits.c.sort_value
        total = select(func.count()).select_from(hits).scalar_subquery()
        page = _keyset(chosen, row_id, value, bound, descending, limit).subquery("page")
    elif sort == "last_message":
        page = _by_last_message(actor, bound, descending, limit)
        total = literal(None, Integer)
    else:
        chosen = matching(session, actor, flt, sort=sort)
        page = _keyset(chosen, Contact.id, key, bound, descending, limit).subquery("page")
        total = literal(None, Integer)
    tags = (select(func.coalesce(func.array_agg(aggregate_order_by(Tag.name, func.lower(Tag.name))),
                                literal([], ARRAY(String))))
            .select_from(ContactTag).join(Tag, Tag.id == ContactTag.tag_id)
            .where(ContactTag.contact_id == Contact.id).scalar_subquery())
    funnel = (select(Funnel.name).join(FunnelRun, FunnelRun.funnel_id == Funnel.id)
              .where(FunnelRun.conversation_id == Conversation.id, FunnelRun.status.in_(LIVE))
              .order_by(FunnelRun.id.desc()).limit(1).scalar_subquery())
    agent = User.__table__.alias("agent")
    query = (select(Contact.id, Contact.name, Contact.push_name, Contact.phone, Contact.email, Contact.company,
                    Contact.custom_data, Contact.created_at, page.c.sort_value,
                    tags.label("tags"), agent.c.name.label("agent"), Team.name.label("team"),
                    Conversation.agent_id, Conversation.team_id, Conversation.id.label("conversation_id"),
                    Instance.name.label("instance"), Conversation.last_message_at, funnel.label("funnel"),
                    total.label("total"))
             .select_from(page).join(Contact, Contact.id == page.c.id)
             .outerjoin(Conversation, Conversation.contact_id == Contact.id)
             .outerjoin(agent, agent.c.id == Conversation.agent_id)
             .outerjoin(Team, Team.id == Conversation.team_id)
             .join(Instance, Instance.id == Contact.instance_id))
    outer_key = page.c.sort_value
    return query.order_by(*((outer_key.desc(), Contact.id.desc()) if descending else (outer_key, Contact.id)))


def _keyset(query: Select, row_id: ColumnElement[Any], value: ColumnElement[Any], bound: Any, descending: bool,
            limit: int) -> Select:
    """``query``'s ``limit`` rows after the cursor ``bound`` in (value, id) order."""
    if bound is not None:
        query = query.where(tuple_(value, row_id) < bound if descending else tuple_(value, row_id) > bound)
    order = (value.desc(), row_id.desc()) if descending else (value.asc(), row_id.asc())
    return query.order_by(*order).limit(limit)


def _by_last_message(actor: Actor, bound: Any, descending: bool, limit: int) -> Any:
    """The page's ids by last message without conditions: the time lives on the conversation, so the contacts with
    one are walked on the conversations' index (0006), those without one (never written, e.g. imported) on
    their own, and the two short lists are merged."""
    key = _sort_value("last_message")
    talked = select(Conversation.contact_id.label("id"), key.label("sort_value")).where(
        Conversation.workspace_id == actor.workspace_id)
    branches = [_keyset(conversations.visible(actor, talked), Conversation.contact_id, key, bound, descending, limit)]
    if actor.is_manager:  # agents list only contacts of conversations they see
        silent = select(Contact.id.label("id"), _NEVER.label("sort_value")).where(
            Contact.workspace_id == actor.workspace_id,
            ~exists().where(Conversation.contact_id == Contact.id))
        branches.append(_keyset(silent, Contact.id, _NEVER, bound, descending, limit))
    merged = union_all(*(branch.subquery().select() for branch in branches)).subquery("merged")
    return _keyset(select(merged.c.id, merged.c.sort_value), merged.c.id, merged.c.sort_value, None, descending,
                   limit).subquery("page")


def row_dict(row: Any) -> dict[str, Any]:
    """A page row as ``list_contacts`` returns it."""
    return {
        "id": row.id, "name": row.name, "push_name": row.push_name, "phone": row.phone,
        "display_name": row.name or row.push_name or row.phone, "email": row.email, "company": row.company,
        "tags": list(row.tags or []), "responsible": row.agent or row.team, "agent_id": row.agent_id,
        "team_id": row.team_id, "instance": row.instance, "last_message_at": row.last_message_at,
        "funnel": row.funnel, "created_at": row.created_at, "custom_data": dict(row.custom_data or {}),
        "conversation_id": row.conversation_id,
    }


def list_contacts(actor: Actor, flt: ContactFilter | dict[str, Any] | None = None, *, sort: str = "name",
                  descending: bool = False, after: tuple[Any, int] | None = None, limit: int = PAGE_SIZE,
                  with_count: bool = False) -> dict[str, Any]:
    """One page of the Contatos list.

    Args:
        actor: who is looking (agents: contacts of conversations they can see).
        flt: the filter (a ``ContactFilter`` or its dict form).
        sort: one of ``SORTS`` (name, phone, created, last_message); ties are broken by id.
        descending: sort direction.
        after: the cursor of the previous page (its ``next`` value); None for the first page.
        limit: rows per page (at most ``MAX_PAGE_SIZE``).
        with_count: also count the matching rows: exactly when the filter has conditions (the page's statement
            counts them), else up to ``COUNT_CAP``.

    Returns:
        ``rows`` (each: ``id``, ``display_name``, ``name``, ``push_name``, ``phone``, ``email``, ``company``,
        ``tags``, ``responsible`` (agent or team name), ``agent_id``, ``team_id``, ``instance`` (number's name),
        ``last_message_at``, ``funnel`` (the running funnel's name), ``created_at``, ``custom_data``,
        ``conversation_id``), ``next`` (the cursor of the next page, None on the last one) and, when asked,
        ``count`` and ``count_capped``.
    """
    flt = parse_filter(flt)
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    with session_scope() as session:
        rows = session.execute(page_query(session, actor, flt, sort=sort, descending=descending, after=after,
                                          limit=limit + 1)).all()
        result: dict[str, Any] = {"rows": [row_dict(row) for row in rows[:limit]], "next": None}
        if len(rows) > limit:
            last = rows[limit - 1]
            result["next"] = (last.sort_value, last.id)
        if with_count and rows and rows[0].total is not None:
            result["count"], result["count_capped"] = rows[0].total, False  # counted by the page's statement
        elif with_count:
            count = count_matching(session, actor, flt, cap=COUNT_CAP)
            result["count"], result["count_capped"] = min(count, COUNT_CAP), count > COUNT_CAP
    return result


def count_matching(session: Session, actor: Actor, flt: ContactFilter, cap: int | None = None) -> int:
    """How many contacts the filter lets through; with ``cap``, counting stops at ``cap + 1``."""
    query = matching(session, actor, flt).with_only_columns(Contact.id)
    if cap is not None:
        query = query.limit(cap + 1)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def filter_choices(actor: Actor) -> dict[str, list[dict[str, Any]]]:
    """What the filter builder offers (any role): ``tags``, ``fields`` (defined: key, label, type), ``agents``,
    ``teams``, ``instances`` and ``funnels`` (each with ``id`` and ``name``), alphabetical."""
    ws = actor.workspace_id
    with session_scope() as session:
        def rows(query: Select) -> list[dict[str, Any]]:
            return [dict(row) for row in session.execute(query).mappings()]

        return {
            "tags": rows(select(Tag.id, Tag.name).where(Tag.workspace_id == ws).order_by(func.lower(Tag.name))),
            "fields": rows(select(ContactField.key, ContactField.label, ContactField.type)
                           .where(ContactField.workspace_id == ws).order_by(ContactField.position, ContactField.id)),
            "agents": rows(select(User.id, User.name).join(WorkspaceMember, WorkspaceMember.user_id == User.id)
                           .where(WorkspaceMember.workspace_id == ws).order_by(func.lower(User.name))),
            "teams": rows(select(Team.id, Team.name).where(Team.workspace_id == ws).order_by(func.lower(Team.name))),
            "instances": rows(select(Instance.id, Instance.name).where(Instance.workspace_id == ws,
                                                                        Instance.removed_at.is_(None))
                              .order_by(Instance.id)),
            "funnels": rows(select(Funnel.id, Funnel.name).where(Funnel.workspace_id == ws)
                            .order_by(func.lower(Funnel.name))),
        }


# -- segments -------------------------------------------------------------------------------------------------


def _segment_name(name: str | None) -> str:
    name = " ".join(clean_text(name or "")[0].split())
    if not 1 <= len(name) <= MAX_SEGMENT_NAME:
        raise InvalidInput("segment name", key="error.segment_name", max=MAX_SEGMENT_NAME)
    return name


def list_segments(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's segments, by name: ``id``, ``name`` (any role may use them)."""
    with session_scope() as session:
        rows = session.execute(select(Segment.id, Segment.name).where(Segment.workspace_id == actor.workspace_id)
                               .order_by(func.lower(Segment.name), Segment.id)).mappings().all()
    return [dict(row) for row in rows]


def _segment(session: Session, actor: Actor, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id) if is_row_id(segment_id) else None
    if segment is None or segment.workspace_id != actor.workspace_id:
        raise NotFound("segment", key="error.segment_not_found")
    return segment


def load_segment(actor: Actor, segment_id: int) -> ContactFilter:
    """A segment's filter, validated again (a filter stored by an older version that no longer holds is
    ``InvalidInput``, never a broken list)."""
    with session_scope() as session:
        stored = dict(_segment(session, actor, segment_id).filter or {})
    try:
        return ContactFilter.model_validate(stored)
    except ValidationError:
        raise InvalidInput("stored segment", key="error.segment_invalid") from None


def save_segment(actor: Actor, name: str, flt: ContactFilter | dict[str, Any]) -> int:
    """Save the filter as a new segment (admins and supervisors); returns its id.

    Raises:
        InvalidInput: empty or too long name, or an invalid filter.
        Conflict: another segment has that name (ignoring case).
    """
    actor.require("admin", "supervisor")
    name = _segment_name(name)
    flt = parse_filter(flt)
    try:
        with session_scope() as session:
            segment = Segment(workspace_id=actor.workspace_id, name=name, created_by=actor.user_id,
                              filter=flt.model_dump(mode="json", exclude_defaults=True))
            session.add(segment)
            session.flush()
            return segment.id
    except IntegrityError:
        raise Conflict("segment name", key="error.segment_exists") from None


def rename_segment(actor: Actor, segment_id: int, name: str) -> None:
    """Rename a segment (admins and supervisors); names stay unique ignoring case."""
    actor.require("admin", "supervisor")
    name = _segment_name(name)
    try:
        with session_scope() as session:
            _segment(session, actor, segment_id).name = name
    except IntegrityError:
        raise Conflict("segment name", key="error.segment_exists") from None


def update_segment(actor: Actor, segment_id: int, flt: ContactFilter | dict[str, Any]) -> None:
    """Replace a segment's filter with the current one (admins and supervisors)."""
    actor.require("admin", "supervisor")
    flt = parse_filter(flt)
    with session_scope() as session:
        _segment(session, actor, segment_id).filter = flt.model_dump(mode="json", exclude_defaults=True)


def delete_segment(actor: Actor, segment_id: int) -> None:
    """Delete a segment (admins and supervisors); contacts are not touched."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        session.delete(_segment(session, actor, segment_id))

