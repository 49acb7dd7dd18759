"""Contact import: reading CSV (encodings, delimiters) and XLSX, refusing what is not a contact table, checking
every row, the job's writes (modes, tags, conversations, activity), resuming after a crash without duplicates, the
failed-rows file, roles and workspace isolation."""

from __future__ import annotations

import csv
import io
import stat
import zipfile
from datetime import date

import pytest
import xlsxwriter
from sqlalchemy import func, select

from tests.factories import make_actor, make_instance, make_workspace, run_jobs
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services import contact_import, contact_jobs, conversations
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactField,
    ContactJobError,
    ContactTag,
    Conversation,
    FunnelRun,
    Instance,
    Message,
    Outbox,
    Tag,
)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                    "c0f01f0005000201d1e7e0a30000000049454e44ae426082")


@pytest.fixture
def shop(engine, r):
    """(admin, instance id) of a workspace with one number."""
    ws = make_workspace()
    return make_actor(ws, "admin"), make_instance(ws)


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Contatos")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, date):
                sheet.write_datetime(r, c, value, book.add_format({"num_format": "dd/mm/yyyy"}))
            else:
                sheet.write(r, c, value)
    book.close()
    return out.getvalue()


def options(instance_id: int, **extra) -> dict:
    return {"instance_id": instance_id, "country": "55", "on_existing": "update", "tags": [], **extra}


def import_file(actor, instance_id, data, mapping=None, **extra) -> tuple[int, dict]:
    """Read, start and run an import; returns (job id, counts)."""
    upload = contact_import.read_upload(actor, "contatos.csv", data)
    job_id = contact_import.start_import(actor, upload.token, mapping or upload.mapping, options(instance_id, **extra))
    return job_id, contact_import.run_job(job_id)


def contacts(instance_id: int) -> dict[str, dict]:
    with session_scope() as s:
        rows = s.scalars(select(Contact).where(Contact.instance_id == instance_id)).all()
        return {c.phone: {"name": c.name, "email": c.email, "company": c.company, "custom": c.custom_data}
                for c in rows}


def tags_of(phone: str) -> list[str]:
    with session_scope() as s:
        return sorted(s.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                                .join(Contact, Contact.id == ContactTag.contact_id).where(Contact.phone == phone)))


def add_field(workspace_id: int, key: str, kind: str, label: str | None = None, choices=()) -> None:
    with session_scope() as s:
        s.add(ContactField(workspace_id=workspace_id, key=key, label=label or key, type=kind, options=list(choices)))


# -- reading -------------------------------------------------------------------------------------------------------

ROWS = [["Nome", "Telefone", "E-mail", "Observação"],
        ["João Conceição", "(11) 98765-4321", "joao@example.com", "Café às 9h"],
        ["Ana", "+55 21 99876-5432", "", "ação"]]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_in_every_encoding_and_delimiter(shop, encoding, delimiter):
    admin, _ = shop
    upload = contact_import.read_upload(admin, "x.csv", csv_bytes(ROWS, delimiter, encoding))
    assert upload.format == "csv" and upload.rows == 2
    assert upload.headers == ["Nome", "Telefone", "E-mail", "Observação"]
    assert upload.preview == ROWS[1:]
    assert upload.mapping == ["name", "phone", "email", "ignore"]


def test_mapping_guesses_synonyms_fields_and_each_target_once(shop):
    admin, _ = shop
    add_field(admin.workspace_id, "data_nascimento", "date", "Data de nascimento")
    add_field(admin.workspace_id, "plano", "choice", "Plano", ["Básico", "Pro"])
    headers = ["WhatsApp", "NOME COMPLETO", "Email Address", "Organização", "Etiquetas", "data de nascimento",
               "PLANO", "Celular", ""]
    upload = contact_import.read_upload(admin, "x.csv", csv_bytes([headers, ["1"] * 9]))
    assert upload.mapping == ["phone", "name", "email", "company", "tags", "field:data_nascimento", "field:plano",
                              "ignore", "ignore"]
    assert upload.headers[-1] == "Coluna 9"


def test_xlsx_with_numbers_and_dates(shop):
    admin, inst = shop
    add_field(admin.workspace_id, "nascimento", "date")
    add_field(admin.workspace_id, "pontos", "number")
    data = xlsx_bytes([["Nome", "Telefone", "nascimento", "pontos"],
                       ["Maria", 5511987654321, date(1990, 5, 17), 12.5],
                       ["Zé", "11 97777-0000", "03/02/2001", "1.234,5"]])
    upload = contact_import.read_upload(admin, "planilha.csv", data)  # the content decides, not the name
    assert upload.format == "xlsx" and upload.rows == 2
    assert upload.preview[0] == ["Maria", "5511987654321", "17/05/1990", "12.5"]
    job_id, counts = import_file(admin, inst, data)
    assert counts == {"created": 2, "updated": 0, "skipped": 0, "failed": 0}
    assert contacts(inst)["5511987654321"]["custom"] == {"nascimento": "1990-05-17", "pontos": 12.5}
    assert contacts(inst)["5511977770000"]["custom"] == {"nascimento": "2001-02-03", "pontos": 1234.5}


@pytest.mark.parametrize(("data", "key"), [
    (b"", "error.import_empty"),
    (b"  \r\n", "error.import_empty"),
    (b"Nome,Telefone\r\n", "error.import_empty"),
    (b"Nome,Telefone\r\n,\r\n , \r\n", "error.import_empty"),
    (PNG, "error.import_type"),
    (b"PK\x03\x04" + bytes(40), "error.import_type"),
    (b"Nome,Telefone\r\nAna,\x01\x02\x03\r\n", "error.import_type"),
    (b"%PDF-1.4 Nome,Telefone", "error.import_type"),
    (b'Nome,Telefone\r\n"Ana,11987654321\r\n', "error.import_malformed"),
])
def test_refuses_what_is_not_a_contact_table(shop, data, key):
    admin, _ = shop
    with pytest.raises(InvalidInput) as refused:
        contact_import.read_upload(admin, "contatos.csv", data)
    assert refused.value.key == key


def test_refuses_a_zip_that_is_not_a_spreadsheet(shop):
    admin, _ = shop
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("contatos.csv", "Nome,Telefone\r\nAna,11987654321\r\n")
    with pytest.raises(InvalidInput) as refused:
        contact_import.read_upload(admin, "contatos.xlsx", out.getvalue())
    assert refused.value.key == "error.import_type"


def test_refuses_files_over_the_limits(shop, monkeypatch):
    admin, _ = shop
    monkeypatch.setattr(contact_import, "MAX_ROWS", 3)
    four = csv_bytes([["Nome", "Telefone"]] + [["A", f"1198765432{i}"] for i in range(4)])
    with pytest.raises(InvalidInput) as refused:
        contact_import.read_upload(admin, "c.csv", four)
    assert refused.value.key == "error.import_too_many_rows"
    assert contact_import.read_upload(admin, "c.csv", csv_bytes([["Nome", "Telefone"]] + [["A", "1"]] * 3)).rows == 3
    monkeypatch.setattr(contact_import, "MAX_FILE_BYTES", 100)
    with pytest.raises(InvalidInput) as refused:
        contact_import.read_upload(admin, "c.csv", b"Nome,Telefone\r\n" + b"Ana,11987654321\r\n" * 10)
    assert refused.value.key == "error.import_too_large"


def test_refuses_too_many_columns_and_an_xlsx_that_unpacks_too_large(shop, monkeypatch):
    admin, _ = shop
    with pytest.raises(InvalidInput) as refused:
        contact_import.read_upload(admin, "c.csv", csv_bytes([[f"c{i}" for i in range(201)], ["1"] * 201]))
    assert refused.value.key == "error.import_columns"
    data = xlsx_bytes([["Nome", "Telefone"], ["Ana", "11987654321"]])
    monkeypatch.setattr(contact_import, "MAX_XLSX_UNPACKED", 1000)
    with pytest.raises(InvalidInput) as refused:
        contact_import.read_upload(admin, "c.xlsx", data)
    assert refused.value.key == "error.import_too_large"


def test_the_upload_is_kept_privately_and_deleted_after_the_import(shop):
    admin, inst = shop
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(ROWS))
    path = get_settings().data_dir / "imports" / str(admin.workspace_id) / upload.token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    job_id = contact_import.start_import(admin, upload.token, upload.mapping, options(inst))
    contact_import.run_job(job_id)
    assert not path.exists()
    with pytest.raises(InvalidInput) as expired:
        contact_import.validate(admin, upload.token, upload.mapping, options(inst))
    assert expired.value.key == "error.import_expired"


# -- validation ----------------------------------------------------------------------------------------------------


def test_validation_lists_every_error_by_line_and_column(shop):
    admin, inst = shop
    ws = admin.workspace_id
    add_field(ws, "plano", "choice", "Plano", ["Básico", "Pro"])
    add_field(ws, "pontos", "number")
    add_field(ws, "nascimento", "date")
    add_field(ws, "cliente", "boolean")
    add_field(ws, "site", "url")
    header = ["Nome", "Telefone", "E-mail", "plano", "pontos", "nascimento", "cliente", "site"]
    good = ["Ana", "11987654321", "ana@example.com", "pro", "10", "01/02/2000", "sim", "https://a.com.br"]
    data = csv_bytes([
        header,
        good,                                                                          # line 2
        ["Bia", "123", "bia@", "Premium", "dez", "31/02/2000", "talvez", "a.com"],     # line 3
        ["Caio", "", "caio@example.com", "", "", "", "", ""],                          # line 4
        ["Duda", "+55 (11) 98765-4321", "", "", "", "", "", ""],                       # line 5: repeats line 2
        ["x" * 256, "21 99876-5432", "e@example.com", "", "", "", "", ""],             # line 6
        [""] * 8,                                                                      # blank: not counted
    ])
    upload = contact_import.read_upload(admin, "c.csv", data)
    check = contact_import.validate(admin, upload.token, upload.mapping, options(inst))
    assert [(e["line"], e["column"], e["message"]) for e in check["errors"]] == [
        (3, "Telefone", "Telefone inválido."),
        (3, "E-mail", "E-mail inválido."),
        # typed fields: the product's one rule and messages (workbench/services/contact_fields.py)
        (3, "plano", "O campo plano aceita só uma das opções da lista (veja Configurações › Campos)."),
        (3, "pontos", "O campo pontos aceita só números, como 1.234,56 ou 1234.56."),
        (3, "nascimento", "O campo nascimento aceita só datas, como 31/12/2026 ou 2026-12-31."),
        (3, "cliente", "O campo cliente aceita só sim ou não."),
        (3, "site", "O campo site precisa de um endereço que comece com http:// ou https://."),
        (4, "Telefone", "Telefone vazio."),
        (5, "Telefone", "Telefone repetido no arquivo (já aparece na linha 2)."),
        (6, "Nome", "Texto longo demais (máximo de 255 caracteres)."),
    ]
    assert {k: check[k] for k in ("rows", "valid", "failed", "existing", "error_count")} == {
        "rows": 5, "valid": 1, "failed": 4, "existing": 0, "error_count": 10}
    assert contacts(inst) == {}, "validation writes nothing"
    _, counts = import_file(admin, inst, data)
    assert counts == {"created": 1, "updated": 0, "skipped": 0, "failed": 4}
    assert contacts(inst)["5511987654321"]["custom"] == {
        "plano": "Pro", "pontos": 10, "nascimento": "2000-02-01", "cliente": True, "site": "https://a.com.br"}


def test_mapping_and_options_are_checked(shop):
    admin, inst = shop
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(ROWS))
    cases = [
        (["name", "ignore", "email", "ignore"], {}, "error.import_mapping_phone"),
        (["phone", "phone", "email", "ignore"], {}, "error.import_mapping_twice"),
        (["name", "phone"], {}, "error.import_mapping"),
        (["name", "phone", "field:nada", "ignore"], {}, "error.import_mapping"),
        (upload.mapping, {"country": "abc"}, "error.import_country"),
        (upload.mapping, {"country": "999"}, "error.import_country"),
        (upload.mapping, {"on_existing": "merge"}, "error.import_mapping"),
        (upload.mapping, {"tags": ["x" * 81]}, "error.tag_name"),
    ]
    for mapping, extra, key in cases:
        with pytest.raises(InvalidInput) as refused:
            contact_import.validate(admin, upload.token, mapping, options(inst, **extra))
        assert refused.value.key == key, (mapping, extra)


def test_default_country_and_international_numbers(shop):
    admin, inst = shop
    data = csv_bytes([["Telefone"], ["(415) 555-2671"], ["+55 11 98765-4321"], ["0044 20 7946 0958"]])
    _, counts = import_file(admin, inst, data, country="1")
    assert counts["created"] == 3
    assert sorted(contacts(inst)) == ["14155552671", "442079460958", "5511987654321"]


def test_a_brazilian_mobile_written_before_the_ninth_digit_gets_it(shop):
    """Old lists hold mobiles as DDD + 8 digits (before 2016's ninth digit); landlines keep their 8 digits."""
    admin, inst = shop
    data = csv_bytes([["Telefone"], ["(11) 8765-4321"], ["+55 21 7654-3210"], ["(11) 3456-7890"]])
    _, counts = import_file(admin, inst, data)
    assert counts["created"] == 3
    assert sorted(contacts(inst)) == ["551134567890", "5511987654321", "5521976543210"]


# -- writing -------------------------------------------------------------------------------------------------------


def test_import_creates_contacts_with_conversations_tags_and_activity_and_sends_nothing(shop):
    admin, inst = shop
    agent = make_actor(admin.workspace_id, "agent")
    data = csv_bytes([["Nome", "Telefone", "Empresa", "Tags", "Cargo"],
                      ["Ana", "11987654321", "ACME", "lead quente; Feira 2026", "CEO"],
                      ["Bia", "21998765432", "", "", "CTO"]])
    upload = contact_import.read_upload(admin, "c.csv", data)
    mapping = upload.mapping[:4] + ["new"]
    job_id = contact_import.start_import(admin, upload.token, mapping, options(inst, tags=["Importados", "VIP"]))
    run_jobs("default")  # through RQ: engine.worker.contact_jobs.run
    status = contact_jobs.job_status(admin, job_id)
    assert status["status"] == "done" and status["done"] == status["total"] == 2
    assert status["result"] == {"created": 2, "updated": 0, "skipped": 0, "failed": 0}
    people = contacts(inst)
    assert people["5511987654321"] == {"name": "Ana", "email": None, "company": "ACME", "custom": {"cargo": "CEO"}}
    assert tags_of("5511987654321") == ["Feira 2026", "Importados", "VIP", "lead quente"]
    assert tags_of("5521998765432") == ["Importados", "VIP"]
    with session_scope() as s:
        field = s.scalars(select(ContactField).where(ContactField.workspace_id == admin.workspace_id)).one()
        assert (field.key, field.label, field.type) == ("cargo", "Cargo", "text")
        assert s.scalar(select(func.count()).select_from(Conversation).where(Conversation.status == "closed")) == 2
        events = s.execute(select(ActivityEvent.kind, ActivityEvent.data, ActivityEvent.actor_user_id)).all()
        assert len(events) == 2 and all(e.kind == "imported" and e.actor_user_id == admin.user_id for e in events)
        assert {e.data["action"] for e in events} == {"created"} and events[0].data["source"] == "import"
        for table in (Message, Outbox, FunnelRun):
            assert s.scalar(select(func.count()).select_from(table)) == 0
    # The agent sees them as the inbox rules say (unassigned conversations), closed and empty.
    listed = conversations.list_conversations(agent, status="closed")
    assert sorted(c["display_name"] for c in listed) == ["Ana", "Bia"]
    assert conversations.list_conversations(agent) == []  # the open inbox is not flooded


def test_a_tag_that_exists_in_another_case_is_reused(shop):
    admin, inst = shop
    with session_scope() as s:
        s.add(Tag(workspace_id=admin.workspace_id, name="VIP"))
    import_file(admin, inst, csv_bytes([["Telefone", "Tags"], ["11987654321", "vip"]]), tags=["Vip"])
    assert tags_of("5511987654321") == ["VIP"]


@pytest.mark.parametrize(("mode", "expected", "counts"), [
    ("update", {"name": "Ana Nova", "email": "ana@example.com", "company": "Nova", "custom": {"cargo": "CFO"}},
     {"created": 1, "updated": 1, "skipped": 0, "failed": 0}),
    ("fill", {"name": "Ana", "email": "ana@example.com", "company": "Velha", "custom": {"cargo": "CFO"}},
     {"created": 1, "updated": 1, "skipped": 0, "failed": 0}),
    ("skip", {"name": "Ana", "email": None, "company": "Velha", "custom": {}},
     {"created": 1, "updated": 0, "skipped": 1, "failed": 0}),
])
def test_existing_phone_modes(shop, mode, expected, counts):
    admin, inst = shop
    add_field(admin.workspace_id, "cargo", "text")
    import_file(admin, inst, csv_bytes([["Nome", "Telefone", "Empresa"], ["Ana", "11987654321", "Velha"]]))
    data = csv_bytes([["Nome", "Telefone", "E-mail", "Empresa", "cargo", "Tags"],
                      ["Ana Nova", "+55 11 98765-4321", "ana@example.com", "Nova", "CFO", "novo"],
                      ["Bia", "21998765432", "", "", "", ""]])
    upload = contact_import.read_upload(admin, "c.csv", data)
    check = contact_import.validate(admin, upload.token, upload.mapping, options(inst, on_existing=mode))
    assert (check["valid"], check["existing"]) == (2, 1)
    job_id = contact_import.start_import(admin, upload.token, upload.mapping, options(inst, on_existing=mode))
    assert contact_import.run_job(job_id) == counts
    assert contacts(inst)["5511987654321"] == expected
    assert tags_of("5511987654321") == ([] if mode == "skip" else ["novo"])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2
        actions = sorted(s.scalars(select(ActivityEvent.data["action"].astext).where(
            ActivityEvent.data["job_id"].astext == str(job_id))))
    assert actions == sorted(["created"] + ["updated"] * counts["updated"])


def test_an_unchanged_contact_counts_as_skipped(shop):
    admin, inst = shop
    data = csv_bytes([["Nome", "Telefone"], ["Ana", "11987654321"]])
    import_file(admin, inst, data)
    assert import_file(admin, inst, data)[1] == {"created": 0, "updated": 0, "skipped": 1, "failed": 0}


def test_a_contact_that_wrote_keeps_its_conversation(shop):
    from tests.factories import inbound, publish

    admin, inst = shop
    publish(inbound(inst, phone="5511987654321", push_name="Ana WhatsApp"))
    run_jobs()
    import_file(admin, inst, csv_bytes([["Nome", "Telefone"], ["Ana", "11987654321"]]))
    with session_scope() as s:
        conversation = s.scalars(select(Conversation)).one()
        assert conversation.status == "open" and conversation.unread_count == 1
    assert contacts(inst)["5511987654321"]["name"] == "Ana"


def test_resume_after_a_crash_writes_nothing_twice(shop, monkeypatch):
    admin, inst = shop
    monkeypatch.setattr(contact_import, "BATCH_ROWS", 3)
    rows = [["Nome", "Telefone", "E-mail"]]
    rows += [[f"Pessoa {i}", f"1198765{i:04d}", "x" if i == 1 else ""] for i in range(8)]
    rows.append(["Repetida", "11987650002", ""])  # line 10 repeats line 4, in a later batch than it
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(rows))
    job_id = contact_import.start_import(admin, upload.token, upload.mapping, options(inst, tags=["lote"]))

    real_write = contact_import._Writer.write
    calls = []

    class Killed(BaseException):
        """The worker dying between two batches."""

    def write_then_die(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(contact_import._Writer, "write", write_then_die)
    with pytest.raises(Killed):
        contact_import.run_job(job_id)
    status = contact_jobs.job_status(admin, job_id)
    assert (status["status"], status["done"]) == ("running", 3)
    assert status["result"] == {"created": 2, "updated": 0, "skipped": 0, "failed": 1}

    monkeypatch.setattr(contact_import._Writer, "write", real_write)
    counts = contact_import.run_job(job_id)  # RQ's retry
    assert counts == {"created": 7, "updated": 0, "skipped": 0, "failed": 2}
    status = contact_jobs.job_status(admin, job_id)
    assert (status["status"], status["done"], status["total"]) == ("done", 9, 9)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 7
        assert s.scalar(select(func.count()).select_from(Conversation)) == 7
        assert s.scalar(select(func.count()).select_from(ContactTag)) == 7
        assert s.scalar(select(func.count()).select_from(ActivityEvent)) == 7
        assert s.execute(select(ContactJobError.line, ContactJobError.message).order_by(ContactJobError.line)).all() \
            == [(3, "E-mail inválido."), (10, "Telefone repetido no arquivo (já aparece na linha 4).")]
    assert contact_import.run_job(job_id) == {"skipped": "settled"}  # a late duplicate run does nothing


def test_a_job_whose_file_is_gone_fails_with_a_reason(shop):
    admin, inst = shop
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(ROWS))
    job_id = contact_import.start_import(admin, upload.token, upload.mapping, options(inst))
    (get_settings().data_dir / "imports" / str(admin.workspace_id) / upload.token).unlink()
    contact_import.run_job(job_id)
    status = contact_jobs.job_status(admin, job_id)
    assert status["status"] == "failed"
    assert status["error"] == "o arquivo enviado não está mais no servidor. Envie-o de novo."


def test_failed_rows_csv_has_the_original_columns_and_erro(shop):
    admin, inst = shop
    data = csv_bytes([["Nome", "Telefone", "E-mail", "Nota"],
                      ["Ana", "11987654321", "ana@example.com", ""],
                      ["=HYPERLINK(\"http://e.vil\")", "123", "bia@", "ok"],
                      ["Caio", "+55 11 98765-4321", "", "x"]], delimiter=";", encoding="cp1252")
    job_id, counts = import_file(admin, inst, data)
    assert counts["failed"] == 2
    body = contact_import.failed_rows_csv(admin, job_id)
    assert body.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";")) == [
        ["Nome", "Telefone", "E-mail", "Nota", "erro"],
        ["'=HYPERLINK(\"http://e.vil\")", "123", "bia@", "ok",
         "Telefone: Telefone inválido.; E-mail: E-mail inválido."],
        ["Caio", "+55 11 98765-4321", "", "x", "Telefone: Telefone repetido no arquivo (já aparece na linha 2)."],
    ]


# -- who may ---------------------------------------------------------------------------------------------------------


def test_agents_cannot_import(shop):
    admin, inst = shop
    agent = make_actor(admin.workspace_id, "agent")
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(ROWS))
    job_id, _ = import_file(admin, inst, csv_bytes(ROWS))
    for call in (lambda: contact_import.read_upload(agent, "c.csv", csv_bytes(ROWS)),
                 lambda: contact_import.import_choices(agent),
                 lambda: contact_import.validate(agent, upload.token, upload.mapping, options(inst)),
                 lambda: contact_import.start_import(agent, upload.token, upload.mapping, options(inst)),
                 lambda: contact_import.failed_rows_csv(agent, job_id)):
        with pytest.raises(PermissionDenied):
            call()
    supervisor = make_actor(admin.workspace_id, "supervisor")
    assert contact_import.read_upload(supervisor, "c.csv", csv_bytes(ROWS)).rows == 2


def test_another_workspace_sees_nothing(shop):
    admin, inst = shop
    other_ws = make_workspace("Outra")
    other = make_actor(other_ws, "admin")
    other_inst = make_instance(other_ws)
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(ROWS))
    with pytest.raises(InvalidInput) as expired:  # its upload is not in this workspace's folder
        contact_import.validate(other, upload.token, upload.mapping, options(other_inst))
    assert expired.value.key == "error.import_expired"
    with pytest.raises(NotFound):  # a number of another workspace
        contact_import.validate(other, contact_import.read_upload(other, "c.csv", csv_bytes(ROWS)).token,
                                upload.mapping, options(inst))
    job_id, _ = import_file(admin, inst, csv_bytes(ROWS))
    for call in (lambda: contact_import.failed_rows_csv(other, job_id), lambda: contact_jobs.job_status(other, job_id)):
        with pytest.raises(NotFound):
            call()
    assert contact_import.import_choices(other)["numbers"] == [{"id": other_inst, "name": "Comercial"}]
    with session_scope() as s:
        assert s.get(Instance, other_inst).workspace_id == other_ws
    assert contacts(other_inst) == {}


def test_a_contact_that_wrote_between_lookup_and_insert_is_left_to_the_caller(shop):
    """The batch looked its phones up, then a first message created one of them: the fast COPY meets the unique
    phone, and the upsert takes the batch instead (the caller then treats that contact as an existing one)."""
    from tests.factories import inbound, publish

    admin, inst = shop
    upload = contact_import.read_upload(admin, "c.csv", csv_bytes(ROWS))
    job_id = contact_import.start_import(admin, upload.token, upload.mapping, options(inst))
    publish(inbound(inst, phone="5511987654321"))
    run_jobs()
    with session_scope() as s:
        plan = contact_import._Plan(headers=[], columns=[], fields={}, instance_id=inst, country=55,
                                    on_existing="update", tags=[])
        writer = contact_import._Writer(job_id=job_id, workspace_id=admin.workspace_id, user_id=None, plan=plan)
        record = {"name": "Ana", "email": None, "company": None, "custom": {}, "tags": []}
        created = writer._create(s.connection(), [{**record, "phone": "5511987654321"},
                                                  {**record, "phone": "5521998765432"}])
        assert [r["phone"] for r in created.values()] == ["5521998765432"]
    assert sorted(contacts(inst)) == ["5511987654321", "5521998765432"]
