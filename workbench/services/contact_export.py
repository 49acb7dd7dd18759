"""Export contacts — the current filter or a selection — to CSV or XLSX, streamed.

The rows are the list's own (``workbench.services.contact_list.matching``: an agent exports only the contacts of
conversations they can see), oldest first, and PostgreSQL formats every cell as text, so rows only pass through
and memory stays flat whatever the row count. CSV is written by PostgreSQL itself (``COPY (query) TO STDOUT``)
and comes out as chunks of UTF-8 with a BOM (Excel then reads the accents right), separated by ``,`` or by ``;``
(Excel in pt-BR expects ``;``). XLSX rows come from a server-side cursor, ``BATCH`` at a time, into xlsxwriter
in ``constant_memory`` mode (each row goes to disk as it is written) in a temporary file, read back in chunks.

Columns: name, phone, e-mail, company, tags, responsible, number, created, last message, then every custom field —
the workspace's defined fields by position (headed by their label), then the other keys found in the rows
exported (at most ``MAX_FREE_KEYS``, alphabetical). A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'``, so a spreadsheet never runs it as a formula.

Every export is recorded for the workspace (``ActivityEvent`` kind "contacts_exported": who, when, the filter,
the format, how many rows, and whether the download ran to the end).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import xlsxwriter
from sqlalchemy import ColumnElement, Select, case, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.services import contact_list
from workbench.services.auth import Actor
from workbench.services.contact_list import ContactFilter, parse_filter
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactField,
    ContactTag,
    Conversation,
    Instance,
    Tag,
    Team,
    User,
    Workspace,
)

BATCH = 2_000
CHUNK = 1 << 20
MAX_FREE_KEYS = 500
MAX_SELECTION = 200_000
DELIMITERS = (",", ";")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BASE_COLUMNS = ("name", "phone", "email", "company", "tags", "responsible", "instance", "created", "last_message")


def _safe(value: ColumnElement[Any]) -> ColumnElement[str]:
    """The cell as text a spreadsheet shows but never evaluates (OWASP's CSV injection rule), computed by
    PostgreSQL: a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'`` before it."""
    text = func.coalesce(value, "")
    return case((func.left(text, 1).in_(FORMULA_START), literal("'").concat(text)), else_=text)


def _custom_columns(session: Session, actor: Actor, flt: ContactFilter, ids: list[int] | None) -> list[tuple[str, str]]:
    """(key, header) of the custom fields: defined ones by position, then free-form keys seen in the rows."""
    defined = session.execute(select(ContactField.key, ContactField.label)
                              .where(ContactField.workspace_id == actor.workspace_id)
                              .order_by(ContactField.position, ContactField.id)).all()
    rows = contact_list.matching(session, actor, flt, ids=ids).with_only_columns(Contact.custom_data).subquery()
    seen = session.scalars(select(func.jsonb_object_keys(rows.c.custom_data).label("key")).distinct()
                           .order_by("key").limit(MAX_FREE_KEYS + len(defined)))
    known = {key for key, _ in defined}
    free = [key for key in seen if key not in known][:MAX_FREE_KEYS]
    return [*((key, label) for key, label in defined), *((key, key) for key in free)]


def _header(custom: list[tuple[str, str]]) -> list[str]:
    """The first row; field labels were typed by people, so they are neutralised like the cells."""
    titles = [t(f"contacts.export.col.{c}") for c in BASE_COLUMNS] + [header for _, header in custom]
    return ["'" + title if title.startswith(FORMULA_START) else title for title in titles]


def _query(session: Session, actor: Actor, flt: ContactFilter, ids: list[int] | None,
           custom: list[tuple[str, str]]) -> Select:
    """Every row of the export as text cells, oldest contact first, formatted and neutralised by PostgreSQL
    (the rows then only pass through: no per-cell Python work)."""
    chosen = contact_list.matching(session, actor, flt, sort="created", ids=ids).subquery("chosen")
    zone = select(Workspace.timezone).where(Workspace.id == actor.workspace_id).scalar_subquery()
    # every contact's tags in one pass (a subquery per row costs more than the rest of the row)
    tags = (select(ContactTag.contact_id,
                   func.string_agg(Tag.name, aggregate_order_by(literal(", "), func.lower(Tag.name))).label("names"))
            .join(Tag, Tag.id == ContactTag.tag_id).where(Tag.workspace_id == actor.workspace_id)
            .group_by(ContactTag.contact_id).subquery("contact_tag_names"))
    agent = User.__table__.alias("agent")

    def moment(column: ColumnElement[Any]) -> ColumnElement[str]:
        return func.to_char(func.timezone(zone, column), "DD/MM/YYYY HH24:MI")

    cells = [func.coalesce(Contact.name, Contact.push_name), Contact.phone, Contact.email, Contact.company,
             tags.c.names, func.coalesce(agent.c.name, Team.name), Instance.name, moment(Contact.created_at),
             moment(Conversation.last_message_at), *(Contact.custom_data[key].astext for key, _ in custom)]
    return (select(*(_safe(cell) for cell in cells)).select_from(chosen)
            .join(Contact, Contact.id == chosen.c.id)
            .outerjoin(tags, tags.c.contact_id == Contact.id)
            .outerjoin(Conversation, Conversation.contact_id == Contact.id)
            .outerjoin(agent, agent.c.id == Conversation.agent_id)
            .outerjoin(Team, Team.id == Conversation.team_id)
            .join(Instance, Instance.id == Contact.instance_id)
            .order_by(chosen.c.sort_value, chosen.c.id))


def _checked(actor: Actor, flt: ContactFilter | dict[str, Any] | None, ids: list[int] | None) -> ContactFilter:
    """The filter, parsed, after checking the selection (an id out of the actor's scope is ``NotFound``) and the
    filter's ids, so a bad request fails when the export is asked for, not half-way through a download."""
    flt = parse_filter(flt)
    with session_scope() as session:
        if ids is not None:
            contact_list.selected(session, actor, ids, MAX_SELECTION)
        contact_list.matching(session, actor, flt)  # built, not run: its conditions and ids are checked
    return flt


def _recorded(actor: Actor, flt: ContactFilter, ids: list[int] | None, data: dict[str, Any],
              body: Callable[[list[int]], Iterator[bytes]]) -> Iterator[bytes]:
    """``body``'s chunks, and the export's record once it ended (also when the reader stopped early: ``complete``
    says so)."""
    counter = [0]
    complete = False
    try:
        yield from body(counter)
        complete = True
    finally:
        with session_scope() as session:
            session.add(ActivityEvent(
                workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind="contacts_exported",
                subject_type="workspace", subject_id=actor.workspace_id,
                data={"filter": flt.model_dump(mode="json", exclude_defaults=True), "rows": counter[0],
                      **data, "selection": len(ids) if ids is not None else None, "complete": complete}))


def export_csv(actor: Actor, flt: ContactFilter | dict[str, Any] | None = None, *, ids: list[int] | None = None,
               delimiter: str = ",") -> Iterator[bytes]:
    """CSV of the contacts the filter lets through (or of the selection ``ids``), as chunks of UTF-8 with a BOM.

    PostgreSQL writes the rows itself (``COPY (query) TO STDOUT``, CSV quoting included), streamed as it goes.

    Raises:
        InvalidInput: a delimiter other than ``,`` or ``;``, or a bad filter.
        NotFound: an id of the selection or of the filter outside the actor's scope.
    """
    if delimiter not in DELIMITERS:
        raise InvalidInput(delimiter, key="error.export_format")
    flt = _checked(actor, flt, ids)

    def body(counter: list[int]) -> Iterator[bytes]:
        with session_scope() as session:
            custom = _custom_columns(session, actor, flt, ids)
            header = io.StringIO()
            csv.writer(header, delimiter=delimiter, lineterminator="\n").writerow(_header(custom))
            yield ("\ufeff" + header.getvalue()).encode()
            statement = _query(session, actor, flt, ids, custom).compile(
                dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
            raw = session.connection().connection.driver_connection
            buffer = bytearray()
            with raw.cursor() as cursor:
                with cursor.copy(f"COPY ({statement.string}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}')",
                                 statement.params) as copy:
                    for block in copy:
                        buffer += block
                        if len(buffer) >= CHUNK:
                            yield bytes(buffer)
                            buffer.clear()
                counter[0] = cursor.rowcount
            yield bytes(buffer)

    return _recorded(actor, flt, ids, {"format": "csv", "delimiter": delimiter}, body)


def export_xlsx(actor: Actor, flt: ContactFilter | dict[str, Any] | None = None, *,
                ids: list[int] | None = None) -> Iterator[bytes]:
    """XLSX (one sheet, every cell text) of the contacts the filter lets through, or of the selection ``ids``.

    Rows come from a server-side cursor, ``BATCH`` at a time, and go to disk as they are written.
    """
    flt = _checked(actor, flt, ids)

    def body(counter: list[int]) -> Iterator[bytes]:
        with tempfile.TemporaryDirectory(prefix="wb-export-") as folder:
            path = os.path.join(folder, "contatos.xlsx")
            book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_formulas": False,
                                              "strings_to_numbers": False, "strings_to_urls": False})
            sheet = book.add_worksheet(t("contacts.export.sheet"))
            with session_scope() as session:
                custom = _custom_columns(session, actor, flt, ids)
                for column, title in enumerate(_header(custom)):
                    sheet.write_string(0, column, title)
                rows = session.execute(_query(session, actor, flt, ids, custom).execution_options(yield_per=BATCH))
                for line, cells in enumerate(rows, start=1):
                    for column, cell in enumerate(cells):
                        if cell:
                            sheet.write_string(line, column, cell)
                    counter[0] = line
            book.close()
            with open(path, "rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk

    return _recorded(actor, flt, ids, {"format": "xlsx"}, body)
