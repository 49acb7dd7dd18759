"""Export contacts — the current filter or a selection — to CSV or XLSX, streamed.

The rows are the list's own (``workbench.services.contact_list.matching``: an agent exports only the contacts of
conversations they can see), oldest first, and PostgreSQL formats every cell as text, so rows only pass through
and memory stays flat whatever the row count. CSV is written by PostgreSQL itself (``COPY (query) TO STDOUT``)
and comes out as chunks of UTF-8 with a BOM (Excel then reads the accents right), separated by ``,`` or by ``;``
(Excel in pt-BR expects ``;``). For XLSX, PostgreSQL writes each row's sheet XML too, read from a server-side
cursor ``BATCH`` rows at a time and deflated into a zip that is handed on as it grows (a spreadsheet library
spends microseconds of Python per cell, four times the whole CSV path's cost per row).

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
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from itertools import islice
from typing import Any
from xml.sax.saxutils import escape

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
             func.left(tags.c.names, MAX_CELL_CHARS), func.coalesce(agent.c.name, Team.name), Instance.name,
             moment(Contact.created_at),
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


def _copied(session: Session, query: Select, delimiter: str, counter: list[int]) -> Iterator[bytes]:
    """The rows of ``query`` as CSV written by PostgreSQL (``COPY (query) TO STDOUT``), in blocks as the server
    sends them; ``counter[0]`` is the row count once the copy ended. Close it before the session ends (the copy
    holds the connection until then)."""
    statement = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY ({statement.string}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}')",
                         statement.params) as copy:
            for block in copy:
                yield bytes(block)
        counter[0] = cursor.rowcount


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
            buffer = bytearray()
            with closing(_copied(session, _query(session, actor, flt, ids, custom), delimiter, counter)) as blocks:
                for block in blocks:
                    buffer += block
                    if len(buffer) >= CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
            yield bytes(buffer)

    return _recorded(actor, flt, ids, {"format": "csv", "delimiter": delimiter}, body)


def export_xlsx(actor: Actor, flt: ContactFilter | dict[str, Any] | None = None, *,
                ids: list[int] | None = None) -> Iterator[bytes]:
    """XLSX (one sheet, every cell an inline string) of the contacts the filter lets through, or of the
    selection ``ids``, streamed as chunks of the zip file as it is written.

    PostgreSQL writes the rows as CSV, as for ``export_csv``; each block is escaped for XML as bytes (``&``, ``<``,
    ``>``; characters XML cannot hold dropped: their bytes never occur inside a UTF-8 character), then read back
    into cells and wrapped in the sheet's markup, and deflated into a zip that is handed on as it grows. Memory
    holds a block of rows and a chunk of output, whatever the row count.
    """
    flt = _checked(actor, flt, ids)

    def body(counter: list[int]) -> Iterator[bytes]:
        out = _Chunks()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as book:
            for name, part in _package_parts(t("contacts.export.sheet")).items():
                book.writestr(name, part)
            yield out.take()
            with session_scope() as session, book.open(SHEET_PART, "w", force_zip64=True) as sheet:
                custom = _custom_columns(session, actor, flt, ids)
                header = [_xml_escaped(title.encode()).decode() for title in _header(custom)]
                sheet.write(SHEET_START + _sheet_rows([header]).encode())
                with closing(_copied(session, _query(session, actor, flt, ids, custom), ",", counter)) as blocks:
                    rows = csv.reader(_lines(_xml_escaped(block) for block in blocks))
                    while batch := list(islice(rows, BATCH)):
                        sheet.write(_sheet_rows(batch).encode())
                        if out.size >= CHUNK:
                            yield out.take()
                sheet.write(SHEET_END)
        yield out.take()

    return _recorded(actor, flt, ids, {"format": "xlsx"}, body)


# -- the XLSX package: the smallest set of parts spreadsheet programs open -----------------------------------

ZIP_LEVEL = 1  # deflate's fastest level: cells repeat a lot, so it still shrinks the sheet about tenfold
SHEET_PART = "xl/worksheets/sheet1.xml"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
SHEET_START = f'{_XML_HEAD}<worksheet xmlns="{_MAIN}"><sheetData>'.encode()
SHEET_END = b"</sheetData></worksheet>"
MAX_CELL_CHARS = 32_767  # a spreadsheet cell's limit
# XML 1.0 has no place for these control characters (tab, line feed and carriage return are allowed)
_XML_ILLEGAL = bytes(c for c in range(32) if c not in (9, 10, 13))


def _package_parts(sheet_name: str) -> dict[str, str]:
    """Every part of the package but the sheet: content types, relationships, the workbook, minimal styles."""
    name = escape(sheet_name[:31], {'"': "&quot;"})
    return {
        "[Content_Types].xml": (
            f'{_XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
            f'<Override PartName="/{SHEET_PART}" ContentType="{_TYPE}.worksheet+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_TYPE}.styles+xml"/></Types>'),
        "_rels/.rels": (
            f'{_XML_HEAD}<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" '
            f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": (
            f'{_XML_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
            f'<sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            f'{_XML_HEAD}<Relationships xmlns="{_PKG_REL}">'
            f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/></Relationships>'),
        "xl/styles.xml": (
            f'{_XML_HEAD}<styleSheet xmlns="{_MAIN}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/>'
            f'</font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill>'
            f'<patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/>'
            f'<bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0"'
            f' borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"'
            f' xfId="0"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
            f'</cellStyles></styleSheet>'),
    }


_ESCAPES = ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"))
_OPEN, _CLOSE = '<c t="inlineStr"><is><t xml:space="preserve">', "</t></is></c>"


def _xml_escaped(block: bytes) -> bytes:
    """A block of UTF-8 text made safe inside an XML element (bytes work: none of these occurs inside a
    multi-byte character)."""
    for raw, entity in _ESCAPES:
        block = block.replace(raw, entity)
    return block.translate(None, _XML_ILLEGAL)


def _lines(blocks: Iterator[bytes]) -> Iterator[str]:
    """Text lines out of blocks cut anywhere, read a ``CHUNK`` at a time (a quoted cell may hold line breaks:
    ``csv.reader`` asks for the next line then). Cuts fall after a line feed, never inside a character."""
    pending = bytearray()
    for block in blocks:
        pending += block
        if len(pending) >= CHUNK:
            cut = pending.rfind(b"\n") + 1
            yield from io.StringIO(pending[:cut].decode(), newline="\n")
            del pending[:cut]
    yield from io.StringIO(pending.decode(), newline="\n")


def _sheet_rows(rows: list[list[str]]) -> str:
    """Rows of escaped text cells as sheet XML; an empty cell is ``<c/>`` (cells carry no reference, so each keeps
    its column by position)."""
    return "".join(["<row>" + "".join([_OPEN + cell + _CLOSE if cell else "<c/>" for cell in row]) + "</row>"
                    for row in rows])


class _Chunks(io.RawIOBase):
    """A write-only stream that keeps what was written until ``take``: the zip is handed on as it grows."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self) -> bytes:
        """What was written since the last call."""
        data, self._parts, self.size = b"".join(self._parts), [], 0
        return data
