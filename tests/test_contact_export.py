"""Export of contacts: CSV (BOM, `,` or `;`), XLSX read back with openpyxl, columns, formula injection, scope,
and the record of every export."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
import python_calamine
from sqlalchemy import select

from tests.contact_rows import make_contact, make_field
from tests.factories import make_actor, make_instance, make_workspace
from workbench.base.errors import InvalidInput, NotFound
from workbench.services import contact_export
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent

HEADER = ["Nome", "Telefone", "E-mail", "Empresa", "Tags", "Responsável", "Número", "Criado em", "Última mensagem"]


@pytest.fixture
def shop(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    return ws, inst, make_actor(ws)


def read_csv(chunks, delimiter=",") -> list[list[str]]:
    data = b"".join(chunks)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the accents right
    return list(csv.reader(io.StringIO(data[3:].decode()), delimiter=delimiter))


def exports() -> list[dict]:
    with session_scope() as s:
        return [{"by": e.actor_user_id, **e.data} for e in s.scalars(
            select(ActivityEvent).where(ActivityEvent.kind == "contacts_exported").order_by(ActivityEvent.id))]


def test_csv_columns_defined_fields_first_then_free_keys_and_the_record(shop):
    ws, inst, admin = shop
    make_field(ws, "plano", "choice", position=2)
    make_field(ws, "idade", "number", position=1)
    make_contact(ws, inst, "João Ação", phone="5511987654321", tags=("vip", "lead"), email="j@x.com",
                 custom={"plano": "ouro", "idade": "40", "cidade": "Recife"})
    make_contact(ws, inst, None, push_name="Zé", custom={"apelido": "zezinho"})
    rows = read_csv(contact_export.export_csv(admin, {"search": ""}))
    assert rows[0] == HEADER + ["Idade", "Plano", "apelido", "cidade"]
    assert rows[1][:7] == ["João Ação", "5511987654321", "j@x.com", "", "lead, vip", "", "Comercial"]
    assert rows[1][9:] == ["40", "ouro", "", "Recife"]
    assert rows[2][0] == "Zé" and rows[2][9:] == ["", "", "zezinho", ""]
    assert exports() == [{"by": admin.user_id, "filter": {}, "rows": 2, "format": "csv", "delimiter": ",",
                          "selection": None, "complete": True}]


def test_semicolon_and_formula_injection_neutralised(shop):
    ws, inst, admin = shop
    hostile = ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "ok; com ponto e vírgula"]
    for i, text in enumerate(hostile):
        make_contact(ws, inst, f"C{i}", custom={"campo": text})
    make_contact(ws, inst, "=cmd|' /C calc'!A0")
    rows = read_csv(contact_export.export_csv(admin, delimiter=";"), delimiter=";")
    values = [row[9] for row in rows[1:8]]
    assert values == ["'=HYPERLINK(\"http://x\")", "'+1+1", "'-2", "'@SUM(A1)", "'\tTAB", "'\rCR",
                      "ok; com ponto e vírgula"]
    assert rows[8][0] == "'=cmd|' /C calc'!A0"
    with pytest.raises(InvalidInput):
        contact_export.export_csv(admin, delimiter="|")


def test_xlsx_opens_with_openpyxl_and_cells_are_text(shop):
    ws, inst, admin = shop
    make_contact(ws, inst, "Ana", phone="5511987654321", tags=("vip",), custom={"f": "=1+1"})
    make_contact(ws, inst, "Bia", tags=("lead",))
    data = b"".join(contact_export.export_xlsx(admin, {"tags_any": ["vip"]}))
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    sheet = book["Contatos"]
    rows = [[cell if cell is not None else "" for cell in row] for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == HEADER + ["f"]
    assert rows[1][:5] == ["Ana", "5511987654321", "", "", "vip"] and rows[1][9] == "'=1+1"
    assert len(rows) == 2
    assert exports()[-1]["format"] == "xlsx" and exports()[-1]["rows"] == 1
    assert exports()[-1]["filter"] == {"tags_any": ["vip"]}


def test_many_rows_oldest_first_none_twice(shop, monkeypatch):
    ws, inst, admin = shop
    monkeypatch.setattr(contact_export, "BATCH", 3)  # the XLSX cursor fetches 3 rows at a time
    for i in range(10):
        make_contact(ws, inst, f"C{i:02}", tags=("b", "A"))
    rows = read_csv(contact_export.export_csv(admin))
    assert [row[0] for row in rows[1:]] == [f"C{i:02}" for i in range(10)]
    assert {row[4] for row in rows[1:]} == {"A, b"}
    book = openpyxl.load_workbook(io.BytesIO(b"".join(contact_export.export_xlsx(admin))), read_only=True)
    names = [row[0] for row in book["Contatos"].iter_rows(min_row=2, values_only=True)]
    assert names == [f"C{i:02}" for i in range(10)]
    assert [e["rows"] for e in exports()] == [10, 10]


def test_scope_selection_and_an_abandoned_download_is_recorded(shop):
    ws, inst, admin = shop
    agent = make_actor(ws, "agent")
    other = make_actor(ws, "agent")
    mine = make_contact(ws, inst, "Meu", agent_id=agent.user_id)
    theirs = make_contact(ws, inst, "Do outro", agent_id=other.user_id)
    rows = read_csv(contact_export.export_csv(agent))
    assert [row[0] for row in rows[1:]] == ["Meu"]
    with pytest.raises(NotFound):
        contact_export.export_csv(agent, ids=[mine, theirs])
    with pytest.raises(NotFound):
        contact_export.export_xlsx(make_actor(make_workspace("Outra")), ids=[mine])
    rows = read_csv(contact_export.export_csv(admin, ids=[theirs]))
    assert [row[0] for row in rows[1:]] == ["Do outro"]
    assert exports()[-1]["selection"] == 1
    stream = contact_export.export_csv(admin)
    next(stream)
    stream.close()  # the browser went away after the first chunk
    assert exports()[-1]["complete"] is False


def test_xlsx_cells_hold_markup_and_odd_characters_as_plain_text(shop):
    """A contact's text is escaped for the sheet's XML: markup stays text, characters XML cannot hold are dropped,
    a cell is cut at a spreadsheet's limit, and both readers the import uses read the file."""
    ws, inst, admin = shop
    odd = '<b>Zé & "filhos"</b>\x07 ]]> ção'
    make_contact(ws, inst, odd, custom={"nota": "linha 1\nlinha 2", "longo": "x" * 1_000})
    data = b"".join(contact_export.export_xlsx(admin))
    rows = list(openpyxl.load_workbook(io.BytesIO(data), read_only=True)["Contatos"].iter_rows(values_only=True))
    assert rows[1][0] == '<b>Zé & "filhos"</b> ]]> ção'
    assert rows[0][9:] == ("longo", "nota") and rows[1][9:] == ("x" * 1_000, "linha 1\nlinha 2")
    sheet = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_name("Contatos")
    assert sheet.to_python()[1][0] == '<b>Zé & "filhos"</b> ]]> ção'
