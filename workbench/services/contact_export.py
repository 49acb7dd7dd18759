"""Export contacts — the current filter or a selection — to CSV or XLSX, streamed.

Rows are read in keyset batches of ``BATCH`` (``workbench.services.contact_list.page_query``, the list's own
statement and scope: an agent exports only the contacts of conversations they can see) and written out batch by
batch, so memory stays flat whatever the row count. CSV comes out as chunks of UTF-8 with a BOM (Excel then reads
the accents right), separated by ``,`` or by ``;`` (Excel in pt-BR expects ``;``). XLSX is written by xlsxwriter
in ``constant_memory`` mode (each row goes to disk as it is written) into a temporary file, then read back in
chunks.

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
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.services import contact_list
from workbench.services.auth import Actor
from workbench.services.contact_list import ContactFilter, parse_filter
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, ContactField, Workspace

BATCH = 2_000
CHUNK = 1 << 20
MAX_FREE_KEYS = 500
MAX_SELECTION = 200_000
FORMATS = ("csv", "xlsx")
DELIMITERS = (",", ";")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BASE_COLUMNS = ("name", "phone", "email", "company", "tags", "responsible", "instance", "created", "last_message")


def neutralise(value: str) -> str:
    """The cell as text a spreadsheet shows but never evaluates (OWASP's CSV injection rule)."""
    return "'" + value if value.startswith(FORMULA_START) else value


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


def _rows(actor: Actor, flt: ContactFilter, ids: list[int] | None, counter: list[int]) -> Iterator[list[str]]:
    """The header, then one list of cells per contact (already neutralised); ``counter[0]`` counts the rows."""
    with session_scope() as session:
        zone = ZoneInfo(session.scalar(select(Workspace.timezone).where(Workspace.id == actor.workspace_id)))
        custom = _custom_columns(session, actor, flt, ids)
        yield [t(f"contacts.export.col.{c}") for c in BASE_COLUMNS] + [header for _, header in custom]
        after = None
        while True:
            rows = session.execute(contact_list.page_query(session, actor, flt, sort="created", after=after,
                                                           limit=BATCH, ids=ids)).all()
            for row in rows:
                counter[0] += 1
                data = row.custom_data or {}
                cells = [row.name or row.push_name or "", row.phone, row.email or "", row.company or "",
                         ", ".join(row.tags or []), row.agent or row.team or "", row.instance,
                         _moment(row.created_at, zone), _moment(row.last_message_at, zone),
                         *(_cell(data.get(key)) for key, _ in custom)]
                yield [neutralise(cell) for cell in cells]
            if len(rows) < BATCH:
                return
            after = (rows[-1].sort_value, rows[-1].id)
            session.expunge_all()


def _moment(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M") if moment else ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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

    Raises:
        InvalidInput: a delimiter other than ``,`` or ``;``, or a bad filter.
        NotFound: an id of the selection or of the filter outside the actor's scope.
    """
    if delimiter not in DELIMITERS:
        raise InvalidInput(delimiter, key="error.export_format")
    flt = _checked(actor, flt, ids)

    def body(counter: list[int]) -> Iterator[bytes]:
        yield "\ufeff".encode()
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        for cells in _rows(actor, flt, ids, counter):
            writer.writerow(cells)
            if buffer.tell() >= CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    return _recorded(actor, flt, ids, {"format": "csv", "delimiter": delimiter}, body)


def export_xlsx(actor: Actor, flt: ContactFilter | dict[str, Any] | None = None, *,
                ids: list[int] | None = None) -> Iterator[bytes]:
    """XLSX (one sheet, every cell text) of the contacts the filter lets through, or of the selection ``ids``."""
    flt = _checked(actor, flt, ids)

    def body(counter: list[int]) -> Iterator[bytes]:
        with tempfile.TemporaryDirectory(prefix="wb-export-") as folder:
            path = os.path.join(folder, "contatos.xlsx")
            book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_formulas": False,
                                              "strings_to_numbers": False, "strings_to_urls": False})
            sheet = book.add_worksheet(t("contacts.export.sheet"))
            for line, cells in enumerate(_rows(actor, flt, ids, counter)):
                for column, cell in enumerate(cells):
                    if cell:
                        sheet.write_string(line, column, cell)
            book.close()
            with open(path, "rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk

    return _recorded(actor, flt, ids, {"format": "xlsx"}, body)
