"""Importing contacts from a spreadsheet: read, map, validate, then a worker writes them in batches.

The steps follow the panel's wizard (``pages/contacts_import.py``), admins and supervisors only:

1. ``read_upload`` refuses what is not a contact table (empty, over ``MAX_FILE_BYTES`` or ``MAX_ROWS``, not
   CSV/XLSX by its content whatever its name says), keeps the file privately in the data dir
   (``<data dir>/imports/<workspace>/``, 0600) and returns its first rows with a guessed column mapping.
2. ``validate`` checks every row against the mapping and options before anything is written, listing errors by
   line and column: invalid phone, bad e-mail, a value outside a field's list or of the wrong type, a phone that
   appears twice in the file (the first one counts), text too long.
3. ``start_import`` creates the fields asked for, then a ``ContactJob`` of kind "import" that a worker runs
   (``run_job``). The job reads the stored file again and writes ``BATCH_ROWS`` rows per transaction, each with
   the resume cursor moved past it (``contact_jobs.advance``), so a job cut off by a crash resumes after its last
   batch without writing anything twice. Rows with errors are kept (``ContactJobError``) for the failed-rows file
   (``failed_rows_csv``: the original columns plus ``erro``).

A contact is unique per (number, phone), so an import goes to one number. Every contact it creates also gets its
conversation, as the inbound path does (``engine/worker/inbound.py``), so lists and the inbox's visibility rules
show it: closed and empty, out of the open inbox until the contact writes (their first message opens it and
counts as their first for funnels). Importing sends nothing and starts no funnel: tags are written directly,
without the "Tag adicionada" triggers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import psycopg
import python_calamine
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from connector.files import private_dir, replace_file
from connector.filetypes import UnreadableArchive, sniff_mime
from workbench.base.errors import InvalidInput, NotFound
from workbench.base.i18n import error_text, t
from workbench.services import contact_jobs
from workbench.services.auth import Actor
from workbench.services.contact_fields import FieldDef, coerce
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import ContactField, ContactJob, ContactJobError, Instance, Tag
from workbench.store.outages import UNAVAILABLE
from workbench.store.text import MAX_CONTACT_FIELDS, MAX_CONTACT_NAME_CHARS, clean_text

MAX_FILE_BYTES = 20 * 1024 * 1024
"""Largest file taken (20 MB: some 200,000 rows of a typical export)."""
MAX_ROWS = 100_000
"""Most data rows in one file (the header line not counted)."""
MAX_COLUMNS = 200
"""Most columns in one file."""
MAX_XLSX_UNPACKED = 256 * 1024 * 1024
"""Most bytes an XLSX may unpack to (as its directory declares): a small file cannot become a huge sheet."""
PREVIEW_ROWS = 20
BATCH_ROWS = 1000
"""Rows per transaction of the job (and per step of its progress)."""
SHOWN_ERRORS = 500
"""Most row errors ``validate`` returns for the screen; the count covers all of them."""
MAX_IMPORT_TAGS = 20
MAX_TAG_CHARS = 80
MAX_EMAIL_CHARS = 254
MAX_COMPANY_CHARS = 255
UPLOAD_TTL_S = 24 * 3600
"""Uploads never imported are deleted after a day (when the next upload arrives)."""
ON_EXISTING = ("update", "fill", "skip")
"""What an import does to a contact whose phone the number already has: overwrite with the file's non-empty
values, fill only its empty ones, or leave it untouched."""
TARGETS = ("ignore", "name", "phone", "email", "company", "tags")
"""What a column can be besides a custom field (``field:<key>``) or a new text field (``new``)."""

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG_SPLIT = re.compile(r"[,;|]")
_NOT_DIGIT = re.compile(r"[^0-9]")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_URL = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+\S*$", re.IGNORECASE)
# Header words (lower case, without accents, spaces or punctuation) the mapping guesses from, pt-BR and English.
SYNONYMS = {
    "name": {"nome", "nomecompleto", "name", "fullname", "cliente", "contato", "nomedocliente", "nomedocontato",
             "lead", "razaosocial"},
    "phone": {"telefone", "celular", "whatsapp", "whats", "zap", "fone", "phone", "mobile", "tel", "numero",
              "telefonecelular", "phonenumber", "mobilephone", "cel", "contatowhatsapp", "telefonewhatsapp"},
    "email": {"email", "mail", "emailaddress", "correioeletronico", "enderecodeemail"},
    "company": {"empresa", "company", "organizacao", "organization", "companhia", "companyname", "nomedaempresa"},
    "tags": {"tags", "tag", "etiquetas", "etiqueta", "marcadores", "marcador", "rotulos", "labels"},
}


@dataclass(frozen=True)
class Upload:
    """A file read by ``read_upload``: what the wizard shows and passes back."""

    token: str
    file_name: str
    format: str  # "csv" or "xlsx"
    headers: list[str]
    preview: list[list[str]]
    rows: int  # rows with something in them (blank ones are skipped)
    mapping: list[str]


@dataclass
class _Plan:
    """Mapping and options checked against the workspace: everything a row's check and the writer need."""

    headers: list[str]
    columns: list[tuple[int, str, str | None]]  # (column index, target, field key)
    fields: dict[str, dict[str, Any]]  # field key -> {"type", "options"}
    instance_id: int
    country: int  # the default country code
    on_existing: str
    tags: list[str]


@dataclass
class _Row:
    line: int
    cells: list[str]
    record: dict[str, Any] | None = None
    errors: list[tuple[str | None, str]] = field(default_factory=list)


class _Bad(Exception):
    """A cell that does not fit its column; the message is the pt-BR reason."""


# -- reading ------------------------------------------------------------------------------------------------------


def _imports_dir(workspace_id: int) -> Path:
    return private_dir(get_settings().data_dir / "imports" / str(workspace_id))


def _detect(data: bytes) -> dict[str, Any]:
    """How to read ``data``: ``{"format": "xlsx"}`` or ``{"format": "csv", "encoding", "delimiter"}``.

    Raises:
        InvalidInput: empty, too large, or not CSV/XLSX by its content.
    """
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput("file too large", key="error.import_too_large", max_mb=MAX_FILE_BYTES // (1024 * 1024))
    if not data.strip():
        raise InvalidInput("empty file", key="error.import_empty")
    try:
        # The name the browser sent is not asked: the content decides (text only counts as CSV).
        mime = sniff_mime(data, "import.csv")
    except UnreadableArchive:
        raise InvalidInput("broken archive", key="error.import_type") from None
    if mime == XLSX_MIME:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNPACKED:
                raise InvalidInput("xlsx unpacks too large", key="error.import_too_large",
                                   max_mb=MAX_FILE_BYTES // (1024 * 1024))
        return {"format": "xlsx"}
    if mime != "text/csv":
        raise InvalidInput("not csv", key="error.import_type")
    for encoding in ("utf-8-sig", "cp1252"):  # Excel in Brazil saves "CSV" as Windows-1252
        try:
            decoded = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _CONTROL.search(decoded):
            break  # a binary file that happens to decode
        first = decoded.split("\n", 1)[0]
        return {"format": "csv", "encoding": encoding, "delimiter": ";" if first.count(";") > first.count(",")
                else ","}
    raise InvalidInput("not text", key="error.import_type")


def _records(data: bytes, source: dict[str, Any]) -> Iterator[list[Any]]:
    """The file's rows, header first, as lists of cells (text; XLSX cells keep numbers, dates and booleans)."""
    if source["format"] == "xlsx":
        try:
            sheet = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
            yield from sheet.iter_rows()
        except python_calamine.CalamineError:
            raise InvalidInput("unreadable xlsx", key="error.import_type") from None
        return
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=source["encoding"], newline="")
    reader = csv.reader(stream, delimiter=source["delimiter"], strict=True)
    try:
        yield from reader
    except csv.Error:
        raise InvalidInput("malformed csv", key="error.import_malformed", line=reader.line_num) from None


def _as_text(value: Any) -> str:
    """A cell as text, trimmed and storable (an XLSX number holding a phone loses its ".0")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return t("import.value.yes") if value else t("import.value.no")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else str(value)
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M") if value.time() != datetime.min.time() else \
            value.strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    value = value if type(value) is str else str(value)
    if value.isascii() and "\x00" not in value:
        return value.strip()  # the common case, and the hot path: nothing to clean
    return clean_text(value)[0].strip()


def _blank(cells: list[Any]) -> bool:
    return all(cell is None or (type(cell) is str and not cell.strip()) for cell in cells)


def _key_of(label: str) -> str:
    """A header or label without accents, case, spaces or punctuation: what the guesses compare."""
    plain = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in plain if ch.isalnum())


def _guess(headers: list[str], fields: list[dict[str, Any]]) -> list[str]:
    """A target per column from its header: a synonym, a field's key or label, else "ignore"; each target once."""
    by_key = {}
    for definition in fields:
        by_key.setdefault(_key_of(definition["key"]), f"field:{definition['key']}")
        by_key.setdefault(_key_of(definition["label"]), f"field:{definition['key']}")
    taken: set[str] = set()
    mapping = []
    for header in headers:
        key = _key_of(header)
        # a workspace's own field named like the column wins over a synonym ("cliente" may be a field)
        target = by_key.get(key) or next((name for name, words in SYNONYMS.items() if key in words), "ignore")
        if target != "ignore" and target in taken:
            target = "ignore"
        taken.add(target)
        mapping.append(target)
    return mapping


def _headers(row: list[Any]) -> list[str]:
    """Column names as errors and the screen show them: never empty, never repeated, at most 120 characters."""
    headers: list[str] = []
    for n, cell in enumerate(row, start=1):
        name = _as_text(cell)[:110] or t("import.column_n", n=n)
        unique, k = name, 1
        while unique in headers:
            k += 1
            unique = f"{name} ({k})"
        headers.append(unique)
    return headers


def _fields(session, workspace_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(ContactField).where(ContactField.workspace_id == workspace_id)
                           .order_by(ContactField.position, ContactField.id)).all()
    return [{"key": f.key, "label": f.label, "type": f.type, "options": list(f.options or [])} for f in rows]


def _clean_old_uploads(folder: Path) -> None:
    cutoff = time.time() - UPLOAD_TTL_S
    for path in folder.iterdir():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def read_upload(actor: Actor, file_name: str, data: bytes) -> Upload:
    """Check an uploaded file, keep it for the next steps and show its beginning with a guessed mapping.

    Args:
        actor: an admin or supervisor.
        file_name: as the browser sent it (only shown; the content decides the format).
        data: the file's bytes.

    Raises:
        PermissionDenied: an agent.
        InvalidInput: empty (no row after the header), over ``MAX_FILE_BYTES`` or ``MAX_ROWS`` or ``MAX_COLUMNS``,
            not CSV (UTF-8, with or without BOM, or Windows-1252; ``,`` or ``;``) or XLSX, or malformed.
    """
    actor.require("admin", "supervisor")
    source = _detect(data)
    records = _records(data, source)
    header = next(records, None)
    if header is None or _blank(header):
        raise InvalidInput("no header", key="error.import_empty")
    if len(header) > MAX_COLUMNS:
        raise InvalidInput("too many columns", key="error.import_columns", max=MAX_COLUMNS)
    headers = _headers(header)
    preview: list[list[str]] = []
    records_count = rows = 0  # every record after the header (the job's cursor counts them) / the non-blank ones
    for cells in records:
        records_count += 1
        if records_count > MAX_ROWS:
            raise InvalidInput("too many rows", key="error.import_too_many_rows", max=f"{MAX_ROWS:,}".replace(",", "."))
        if _blank(cells):
            continue
        rows += 1
        if len(preview) < PREVIEW_ROWS:
            texts = [_as_text(cell) for cell in cells[:len(headers)]]
            preview.append(texts + [""] * (len(headers) - len(texts)))
    if not rows:
        raise InvalidInput("no rows", key="error.import_empty")
    with session_scope() as session:
        mapping = _guess(headers, _fields(session, actor.workspace_id))
    name = clean_text(file_name or "", limit=255)[0].strip() or t("import.unnamed_file")
    token = secrets.token_hex(16)
    folder = _imports_dir(actor.workspace_id)
    _clean_old_uploads(folder)
    replace_file(folder / token, data)
    replace_file(folder / f"{token}.json", json.dumps(
        {"file_name": name, "source": source, "headers": headers, "rows": rows, "records": records_count}))
    return Upload(token=token, file_name=name, format=source["format"], headers=headers, preview=preview,
                  rows=rows, mapping=mapping)


def _load_upload(workspace_id: int, token: str) -> tuple[bytes, dict[str, Any]]:
    folder = get_settings().data_dir / "imports" / str(workspace_id)
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise InvalidInput("bad token", key="error.import_expired")
    try:
        return (folder / token).read_bytes(), json.loads((folder / f"{token}.json").read_text())
    except FileNotFoundError:
        raise InvalidInput("upload gone", key="error.import_expired") from None


def _drop_upload(workspace_id: int, token: str) -> None:
    folder = get_settings().data_dir / "imports" / str(workspace_id)
    for path in (folder / token, folder / f"{token}.json"):
        path.unlink(missing_ok=True)


# -- choices, mapping and options ----------------------------------------------------------------------------------


def import_choices(actor: Actor) -> dict[str, Any]:
    """What the wizard offers: the workspace's ``numbers`` (id, name), custom ``fields`` (key, label, type,
    options) and existing ``tags`` (names).

    Raises:
        PermissionDenied: an agent.
    """
    actor.require("admin", "supervisor")
    with session_scope() as session:
        numbers = session.execute(select(Instance.id, Instance.name).where(
            Instance.workspace_id == actor.workspace_id, Instance.removed_at.is_(None)).order_by(Instance.id)).all()
        tags = session.scalars(select(Tag.name).where(Tag.workspace_id == actor.workspace_id)
                               .order_by(func.lower(Tag.name))).all()
        return {"numbers": [{"id": n.id, "name": n.name} for n in numbers],
                "fields": _fields(session, actor.workspace_id), "tags": list(tags)}


def _plan(session, actor: Actor, meta: dict[str, Any], mapping: list[str], options: dict[str, Any],
          create_fields: bool = False) -> _Plan:
    """Check the mapping and options against the workspace; with ``create_fields``, add the new fields.

    Raises:
        InvalidInput: a mapping of the wrong length, an unknown target, a target chosen twice, no phone column,
            too many field columns, a bad country code, option or tag.
        NotFound: the number is not the workspace's (or was removed).
    """
    headers = meta["headers"]
    if not isinstance(mapping, list) or len(mapping) != len(headers):
        raise InvalidInput("mapping size", key="error.import_mapping")
    known = {f["key"]: f for f in _fields(session, actor.workspace_id)}
    instance_id = options.get("instance_id")
    instance = session.get(Instance, instance_id) if isinstance(instance_id, int) else None
    if instance is None or instance.workspace_id != actor.workspace_id or instance.removed_at is not None:
        raise NotFound("instance", key="error.instance_not_found")
    country = str(options.get("country") or "").strip().lstrip("+")
    region = phonenumbers.region_code_for_country_code(int(country)) if country.isdigit() and len(country) <= 3 \
        else "ZZ"
    if region == "ZZ":
        raise InvalidInput("country", key="error.import_country")
    on_existing = options.get("on_existing")
    if on_existing not in ON_EXISTING:
        raise InvalidInput("on_existing", key="error.import_mapping")
    tags = _option_tags(options.get("tags") or [])
    columns: list[tuple[int, str, str | None]] = []
    seen: set[str] = set()
    new_keys = set(known)
    for index, target in enumerate(mapping):
        if target == "ignore":
            continue
        if target == "new":
            key = _new_field_key(headers[index], new_keys)
            new_keys.add(key)
            if create_fields:
                position = session.scalar(select(func.coalesce(func.max(ContactField.position), 0)).where(
                    ContactField.workspace_id == actor.workspace_id)) + 1
                session.add(ContactField(workspace_id=actor.workspace_id, key=key, label=headers[index][:120],
                                         type="text", options=[], position=position))
                session.flush()
            known[key] = {"key": key, "type": "text", "options": []}
            target = f"field:{key}"
        if target in seen:
            raise InvalidInput("target twice", key="error.import_mapping_twice", n=index + 1)
        seen.add(target)
        if target.startswith("field:"):
            key = target.removeprefix("field:")
            if key not in known:
                raise InvalidInput("unknown field", key="error.import_mapping")
            columns.append((index, "field", key))
        elif target in TARGETS:
            columns.append((index, target, None))
        else:
            raise InvalidInput("unknown target", key="error.import_mapping")
    if "phone" not in seen:
        raise InvalidInput("no phone", key="error.import_mapping_phone")
    if sum(1 for _, target, _ in columns if target == "field") > MAX_CONTACT_FIELDS:
        raise InvalidInput("too many fields", key="error.field_count", max=MAX_CONTACT_FIELDS)
    fields = {key: {"type": known[key]["type"], "options": known[key].get("options") or []}
              for _, target, key in columns if key}
    return _Plan(headers=headers, columns=columns, fields=fields, instance_id=instance.id, country=int(country),
                 on_existing=on_existing, tags=tags)


def _option_tags(names: list[Any]) -> list[str]:
    tags: dict[str, str] = {}
    for name in names:
        name = " ".join(clean_text(str(name))[0].split())
        if not name:
            continue
        if len(name) > MAX_TAG_CHARS:
            raise InvalidInput("tag name", key="error.tag_name", max=MAX_TAG_CHARS)
        tags.setdefault(name.lower(), name)
    if len(tags) > MAX_IMPORT_TAGS:
        raise InvalidInput("too many tags", key="error.import_tags", max=MAX_IMPORT_TAGS)
    return list(tags.values())


def _new_field_key(header: str, taken: set[str]) -> str:
    """A field key from a header ("Data de nascimento" → "data_de_nascimento"), unique among ``taken``."""
    plain = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode().lower()
    key = "_".join(re.findall(r"[a-z0-9]+", plain))[:64] or "campo"
    if not key[0].isalpha():
        key = f"campo_{key}"[:64]
    candidate, n = key, 1
    while candidate in taken:
        n += 1
        candidate = f"{key[:60]}_{n}"
    return candidate


# -- one row ------------------------------------------------------------------------------------------------------


def _limited(text_value: str, limit: int) -> str:
    if len(text_value) > limit:
        raise _Bad(t("import.row.too_long", max=limit))
    return text_value


BRAZIL = 55


def _phone(raw: str, country: int) -> str:
    """The phone as contacts keep it (country code and number, digits only), or ``_Bad``.

    "+" or "00" in front: the number carries its country code; else it is ``country``'s, with or without its
    trunk "0" and with or without the country code typed in. Valid means valid for phonenumbers' metadata (the
    number's length and ranges). A Brazilian mobile written as DDD and 8 digits (before 2016's ninth digit: its
    first digit is 6 to 9, landlines' 2 to 5) gets its 9, as the number is dialled today. Built from the digits
    rather than with ``phonenumbers.parse``: the same answer for these inputs at a third of the cost, and the
    import checks every row.
    """
    digits = _NOT_DIGIT.sub("", raw)
    international = raw.startswith("+") or raw.startswith("00")
    if raw.startswith("00"):
        digits = digits[2:]
    if not 4 <= len(digits) <= 17:
        raise _Bad(t("import.row.phone"))
    if international:
        # country codes are prefix-free: at most one of the first 1 to 3 digits is one
        candidates = [(int(digits[:n]), digits[n:]) for n in (1, 2, 3)
                      if int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE][:1]
    else:
        code = str(country)
        national = digits.lstrip("0")
        candidates = [(country, digits), (country, national)]
        if national.startswith(code):
            candidates.append((country, national[len(code):]))
    for code, national in candidates:
        if code == BRAZIL and len(national) == 10 and national[2] in "6789":
            national = f"{national[:2]}9{national[2:]}"
        zeros = len(national) - len(national.lstrip("0"))
        if not national or zeros == len(national):
            continue
        number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national),
                                          italian_leading_zero=zeros > 0 or None, number_of_leading_zeros=zeros or None)
        if phonenumbers.is_valid_number(number):
            return f"{code}{national}"
    raise _Bad(t("import.row.phone"))


def _email(address: str) -> str:
    address = address.lower()
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    if (len(address) > MAX_EMAIL_CHARS or not at or not local or any(ch.isspace() or ch == "@" for ch in local)
            or len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels)):
        raise _Bad(t("import.row.email"))
    return address


def _tag_list(value: str) -> list[str]:
    tags = []
    for part in _TAG_SPLIT.split(value):
        name = " ".join(part.split())
        if len(name) > MAX_TAG_CHARS:
            raise _Bad(t("import.row.tag", max=MAX_TAG_CHARS))
        if name:
            tags.append(name)
    return tags


def field_value(key: str, definition: dict[str, Any], value: Any, country: int) -> Any:
    """A cell as a typed custom field stores it (``contacts.custom_data[key]``), or ``_Bad`` with the reason.

    The product's one rule for typed values (``workbench.services.contact_fields.coerce``); phones are read with
    the import's default country code instead of Brazil's.
    """
    if definition["type"] == "phone":
        return _phone(_as_text(value), country)
    if isinstance(value, datetime):  # a spreadsheet date cell
        value = value.date()
    options = tuple(str(option) for option in definition.get("options") or ())
    field = FieldDef(None, key, key, definition["type"], options)
    try:
        return coerce(field, value)
    except InvalidInput as exc:
        raise _Bad(error_text(exc)) from None


def _check(plan: _Plan, line: int, cells: list[Any], seen: dict[str, int]) -> _Row:
    """One data row against the plan: its record, or its errors (column header, pt-BR reason)."""
    row = _Row(line=line, cells=[])
    record: dict[str, Any] = {"phone": None, "name": None, "email": None, "company": None, "custom": {}, "tags": []}
    phone_column = None
    for index, target, key in plan.columns:
        column = plan.headers[index]
        value = cells[index] if index < len(cells) else None
        if target == "phone":
            phone_column = column
        text_value = _as_text(value)
        if not text_value:
            if target == "phone":
                row.errors.append((column, t("import.row.phone_missing")))
            continue
        try:
            if target == "phone":
                record["phone"] = _phone(text_value, plan.country)
            elif target == "name":
                record["name"] = _limited(text_value, MAX_CONTACT_NAME_CHARS)
            elif target == "company":
                record["company"] = _limited(text_value, MAX_COMPANY_CHARS)
            elif target == "email":
                record["email"] = _email(text_value)
            elif target == "tags":
                record["tags"] = _tag_list(text_value)
            else:
                record["custom"][key] = field_value(key, plan.fields[key], value, plan.country)
        except _Bad as bad:
            row.errors.append((column, str(bad)))
    if record["phone"] is not None:
        first = seen.setdefault(record["phone"], line)
        if first != line:
            row.errors.append((phone_column, t("import.row.phone_duplicate", line=first)))
    if row.errors:
        row.cells = [_as_text(cell) for cell in cells[:len(plan.headers)]]  # for the failed-rows file
    else:
        row.record = record
    return row


def _rows(data: bytes, meta: dict[str, Any]) -> Iterator[tuple[int, list[Any]]]:
    """(line, cells) of every data record (blank ones included: the resume cursor counts them); line 1 is the
    header."""
    records = _records(data, meta["source"])
    next(records, None)
    yield from enumerate(records, start=2)


# -- validation ---------------------------------------------------------------------------------------------------


def validate(actor: Actor, token: str, mapping: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """Check every row of an upload before anything is written.

    Args:
        actor: an admin or supervisor.
        token: ``Upload.token``.
        mapping: one target per column: "ignore", "name", "phone", "email", "company", "tags", "field:<key>" or
            "new" (a new text field named after the header).
        options: ``instance_id`` (the number the contacts belong to), ``country`` (default country code, e.g.
            "55"), ``on_existing`` (``ON_EXISTING``) and ``tags`` (names added to every imported contact).

    Returns:
        ``rows`` (non-blank data rows), ``valid``, ``failed``, ``existing`` (valid rows whose phone the number
        already has), ``errors`` (the first ``SHOWN_ERRORS`` as ``{"line", "column", "message"}``) and
        ``error_count``.

    Raises:
        PermissionDenied: an agent.
        InvalidInput: an expired upload, a bad mapping or option.
        NotFound: the number is not the workspace's.
    """
    actor.require("admin", "supervisor")
    data, meta = _load_upload(actor.workspace_id, token)
    with session_scope() as session:
        plan = _plan(session, actor, meta, mapping, options)
    seen: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    counts = {"rows": 0, "valid": 0, "failed": 0, "existing": 0, "error_count": 0}
    phones: list[str] = []
    with session_scope() as session:
        conn = session.connection()
        for line, cells in _rows(data, meta):
            if _blank(cells):
                continue
            row = _check(plan, line, cells, seen)
            counts["rows"] += 1
            if row.record is None:
                counts["failed"] += 1
                counts["error_count"] += len(row.errors)
                errors.extend({"line": line, "column": column, "message": message}
                              for column, message in row.errors[:max(0, SHOWN_ERRORS - len(errors))])
                continue
            counts["valid"] += 1
            phones.append(row.record["phone"])
            if len(phones) >= 5000:
                counts["existing"] += len(_existing(conn, plan.instance_id, phones, lock=False))
                phones = []
        if phones:
            counts["existing"] += len(_existing(conn, plan.instance_id, phones, lock=False))
    return {**counts, "errors": errors}


def start_import(actor: Actor, token: str, mapping: list[str], options: dict[str, Any]) -> int:
    """Create the new fields and the import job, and queue it; returns the job's id (``contact_jobs.job_status``).

    Same arguments and errors as ``validate``; the rows are checked again by the job as it writes them.

    Raises:
        AfterCommit: the job is saved but Redis did not take it (it waits).
    """
    actor.require("admin", "supervisor")
    _, meta = _load_upload(actor.workspace_id, token)
    with session_scope() as session:
        plan = _plan(session, actor, meta, mapping, options, create_fields=True)
        mapped = ["ignore"] * len(plan.headers)
        for index, target, key in plan.columns:
            mapped[index] = f"field:{key}" if key else target
        params = {"token": token, "source": meta["source"], "headers": plan.headers, "mapping": mapped,
                  "fields": plan.fields, "instance_id": plan.instance_id, "country": plan.country,
                  "on_existing": plan.on_existing, "tags": plan.tags}
        job = contact_jobs.create_job(session, actor, "import", params, total=meta["records"],
                                      file_name=meta["file_name"])
        job_id = job.id
    contact_jobs.queue_job(job_id)
    return job_id


# -- the job ------------------------------------------------------------------------------------------------------


class _Superseded(Exception):
    """Another runner of the same job moved its cursor: this one stops without writing."""


# One probe of the (number, phone) index per phone: ``phone = ANY(:phones)`` lets the planner filter every
# contact of the number instead, which made each batch slower than the last.
_EXISTING = """
    SELECT c.id, c.phone, c.name, c.email, c.company, c.custom_data FROM unnest(CAST(:phones AS text[])) AS p(phone)
    CROSS JOIN LATERAL (SELECT * FROM contacts WHERE instance_id = :instance AND phone = p.phone {lock}) AS c"""
_NEW_IDS = text("SELECT nextval(pg_get_serial_sequence('contacts', 'id')) FROM generate_series(1, :n)")
_INSERT = text("""
    INSERT INTO contacts (workspace_id, instance_id, phone, name, email, company, custom_data)
    SELECT :ws, :instance, r.phone, r.name, r.email, r.company, r.custom_data
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS r(phone text, name text, email text, company text, custom_data jsonb)
    ON CONFLICT (instance_id, phone) DO NOTHING
    RETURNING id, phone""")
_UPDATE = text("""
    UPDATE contacts AS c SET name = r.name, email = r.email, company = r.company, custom_data = r.custom_data,
                             updated_at = now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS r(id bigint, name text, email text, company text, custom_data jsonb)
    WHERE c.id = r.id""")
# Closed and empty, as described in the module docstring; a contact that already has one keeps it (new contacts'
# conversations are COPY'd: see ``_Writer.write``).
_CONVERSATIONS = text("""
    INSERT INTO conversations (workspace_id, instance_id, contact_id, status)
    SELECT :ws, :instance, id, 'closed' FROM unnest(CAST(:ids AS bigint[])) AS id
    ON CONFLICT (contact_id) DO NOTHING""")
_TAGS = text("""
    INSERT INTO tags (workspace_id, name) SELECT :ws, name FROM unnest(CAST(:names AS text[])) AS name
    ON CONFLICT DO NOTHING""")
_TAG_IDS = text("SELECT DISTINCT ON (lower(name)) lower(name), id FROM tags "
                "WHERE workspace_id = :ws AND lower(name) = ANY(CAST(:names AS text[])) ORDER BY lower(name), id")
_CONTACT_TAGS = text("""
    INSERT INTO contact_tags (contact_id, tag_id)
    SELECT * FROM unnest(CAST(:contacts AS bigint[]), CAST(:tags AS bigint[]))
    ON CONFLICT DO NOTHING RETURNING contact_id""")


def _existing(conn: Connection, instance_id: int, phones: list[str], lock: bool = True) -> dict[str, Any]:
    """The number's contacts among ``phones``, by phone (locked for the batch's transaction with ``lock``)."""
    query = text(_EXISTING.format(lock="FOR UPDATE" if lock else ""))
    return {row.phone: row for row in conn.execute(query, {"instance": instance_id, "phones": phones})}


def _merged(mode: str, current: Any, record: dict[str, Any]) -> dict[str, Any] | None:
    """The contact's row after the import (``update``: the file's non-empty values win; ``fill``: only empty
    ones are filled), or None when nothing changes."""
    row = {"id": current.id, "name": current.name, "email": current.email, "company": current.company,
           "custom_data": dict(current.custom_data or {})}
    for column in ("name", "email", "company"):
        value = record[column]
        if value is not None and not (mode == "fill" and row[column]):
            row[column] = value
    for key, value in record["custom"].items():
        if not (mode == "fill" and row["custom_data"].get(key) not in (None, "")):
            row["custom_data"][key] = value
    unchanged = (row["name"], row["email"], row["company"], row["custom_data"]) == (
        current.name, current.email, current.company, current.custom_data or {})
    return None if unchanged else row


@dataclass
class _Writer:
    """Writes a job's batches; keeps the workspace's tag ids between batches."""

    job_id: int
    workspace_id: int
    user_id: int | None
    plan: _Plan
    tag_ids: dict[str, int] = field(default_factory=dict)

    def _tag_ids(self, conn: Connection, names: set[str]) -> dict[str, int]:
        missing = {name.lower(): name for name in names if name.lower() not in self.tag_ids}
        if missing:
            conn.execute(_TAGS, {"ws": self.workspace_id, "names": list(missing.values())})
            self.tag_ids.update(dict(conn.execute(_TAG_IDS, {"ws": self.workspace_id,
                                                             "names": list(missing)}).all()))
        return self.tag_ids

    def write(self, rows: list[_Row], before: int, after: int, counts: dict[str, int]) -> None:
        """One batch in one transaction with the cursor moved from ``before`` to ``after``."""
        with session_scope() as session:
            conn = session.connection()
            done = conn.execute(text("SELECT done FROM contact_jobs WHERE id = :id FOR UPDATE"),
                                {"id": self.job_id}).scalar()
            if done != before:
                raise _Superseded(self.job_id)
            records = {row.record["phone"]: row.record for row in rows if row.record is not None}
            scope = {"ws": self.workspace_id, "instance": self.plan.instance_id}
            existing = _existing(conn, self.plan.instance_id, list(records))
            created: dict[int, dict[str, Any]] = {}
            new = [r for phone, r in records.items() if phone not in existing]
            if new:
                created = self._create(conn, new)
                if len(created) < len(new):  # the contact wrote in meanwhile: it is an existing one now
                    taken = {r["phone"] for r in created.values()}
                    existing.update(_existing(conn, self.plan.instance_id,
                                              [r["phone"] for r in new if r["phone"] not in taken]))
            updated: set[int] = set()
            if self.plan.on_existing != "skip":
                changes = []
                for phone, current in existing.items():
                    row = _merged(self.plan.on_existing, current, records[phone])
                    if row is not None:
                        changes.append(row)
                        updated.add(current.id)
                if changes:
                    conn.execute(_UPDATE, {"rows": json.dumps(changes)})
                pairs = self._pairs(conn, {row.id: records[phone] for phone, row in existing.items()})
                if pairs:
                    added = conn.execute(_CONTACT_TAGS, {"contacts": [c for c, _ in pairs],
                                                         "tags": [tag for _, tag in pairs]})
                    updated |= {contact_id for (contact_id,) in added}
            if existing:
                conn.execute(_CONVERSATIONS, {**scope, "ids": [row.id for row in existing.values()]})
            # The rows below belong to contacts this transaction created, so none can exist yet: COPY them.
            _copy(conn, "conversations (workspace_id, instance_id, contact_id, status)",
                  [(self.workspace_id, self.plan.instance_id, contact_id, "closed") for contact_id in created])
            _copy(conn, "contact_tags (contact_id, tag_id)", self._pairs(conn, created))
            _copy(conn, "activity_events (workspace_id, actor_user_id, kind, subject_type, subject_id, data)", [
                (self.workspace_id, self.user_id, "imported", "contact", contact_id,
                 json.dumps({"source": "import", "job_id": self.job_id, "action": action}))
                for ids, action in ((created, "created"), (updated, "updated")) for contact_id in ids])
            failed = [row for row in rows if row.record is None]
            contact_jobs.add_errors(session, self.job_id, [
                (row.line, column, message, {"cells": row.cells}) for row in failed for column, message in row.errors])
            counts["created"] += len(created)
            counts["updated"] += len(updated)
            counts["skipped"] += len(existing) - len(updated)
            counts["failed"] += len(failed)
            contact_jobs.advance(session, self.job_id, after, dict(counts))

    def _create(self, conn: Connection, new: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Insert the batch's new contacts; returns them by id.

        COPY with ids drawn beforehand is three times as fast as an upsert, and the phones were just looked up
        (and the existing ones locked). Only a contact whose first message arrived since then makes it fail: the
        savepoint is rolled back and the upsert, which leaves such a contact to the caller, does the batch.
        """
        ids = conn.execute(_NEW_IDS, {"n": len(new)}).scalars().all()
        try:
            with conn.begin_nested():
                _copy(conn, "contacts (id, workspace_id, instance_id, phone, name, email, company, custom_data)", [
                    (contact_id, self.workspace_id, self.plan.instance_id, r["phone"], r["name"], r["email"],
                     r["company"], json.dumps(r["custom"])) for contact_id, r in zip(ids, new, strict=True)])
            return dict(zip(ids, new, strict=True))
        except psycopg.errors.UniqueViolation:
            by_phone = {r["phone"]: r for r in new}
            payload = [{"phone": r["phone"], "name": r["name"], "email": r["email"], "company": r["company"],
                        "custom_data": r["custom"]} for r in new]
            return {contact_id: by_phone[phone] for contact_id, phone in conn.execute(_INSERT, {
                "ws": self.workspace_id, "instance": self.plan.instance_id, "rows": json.dumps(payload)})}

    def _pairs(self, conn: Connection, records: dict[int, dict[str, Any]]) -> list[tuple[int, int]]:
        """(contact id, tag id) of the import's tags and each row's own, the workspace's tags created as needed."""
        names = [(contact_id, name) for contact_id, record in records.items()
                 for name in (*self.plan.tags, *record["tags"])]
        if not names:
            return []
        ids = self._tag_ids(conn, {name for _, name in names})
        return list({(contact_id, ids[name.lower()]) for contact_id, name in names})


def _copy(conn: Connection, target: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY ``rows`` into ``target`` ("table (columns)") in the connection's transaction: for rows that cannot
    conflict, about twice as fast as INSERT … SELECT, and the job's writes are mostly these."""
    if not rows:
        return
    with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def run_job(job_id: int) -> dict[str, Any]:
    """Run (or resume) an import job: rows from the stored file in batches of ``BATCH_ROWS``, each committed with
    the cursor; returns the counts (``created``, ``updated``, ``skipped``, ``failed``).

    A resumed job skips the rows before its cursor (it still reads their phones, so a later repeat of one is a
    duplicate as it was the first time). The stored file is deleted when the job ends.
    """
    with session_scope() as session:
        job = contact_jobs.start(session, job_id)
        if job is None:
            return {"skipped": "settled"}
        params, done = dict(job.params), job.done
        workspace_id, user_id = job.workspace_id, job.created_by
        counts = {"created": 0, "updated": 0, "skipped": 0, "failed": 0, **(job.result or {})}
    token = params["token"]
    try:
        data, _ = _load_upload(workspace_id, token)
    except InvalidInput:
        with session_scope() as session:
            contact_jobs.finish(session, job_id, counts, error=t("import.job.file_missing"))
        return counts
    plan = _Plan(headers=params["headers"], fields=params["fields"], instance_id=params["instance_id"],
                 country=params["country"], on_existing=params["on_existing"], tags=params["tags"],
                 columns=[(index, target.split(":", 1)[0], target.split(":", 1)[1] if ":" in target else None)
                          for index, target in enumerate(params["mapping"]) if target != "ignore"])
    writer = _Writer(job_id=job_id, workspace_id=workspace_id, user_id=user_id, plan=plan)
    seen: dict[str, int] = {}
    batch: list[_Row] = []
    cursor = before = done
    phone_index = next(index for index, target, _ in plan.columns if target == "phone")
    # One batch is written (in a thread: the time is PostgreSQL's) while the next is read and checked.
    writing: Future[None] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job_id}") as pool:
            for consumed, (line, cells) in enumerate(_rows(data, {"source": params["source"]}), start=1):
                if consumed <= done:
                    _remember_phone(plan, line, cells, phone_index, seen)
                    continue
                cursor = consumed
                if not _blank(cells):
                    batch.append(_check(plan, line, cells, seen))
                if cursor - before >= BATCH_ROWS:
                    if writing is not None:
                        writing.result()  # batches commit in order: the cursor only moves forward
                    writing = pool.submit(writer.write, batch, before, cursor, counts)
                    batch, before = [], cursor
            if writing is not None:
                writing.result()
            if cursor > before:
                writer.write(batch, before, cursor, counts)
    except _Superseded:
        return counts
    except InvalidInput as exc:  # the stored file cannot be read any more (it was read once, so: damaged)
        with session_scope() as session:
            contact_jobs.finish(session, job_id, counts, error=t(exc.key, **exc.context))
        return counts
    with session_scope() as session:
        contact_jobs.finish(session, job_id, counts)
    _drop_upload(workspace_id, token)
    try:
        live.touch(get_redis(), [workspace_id])
    except UNAVAILABLE:
        pass  # lists catch up on the workspace's next change
    return counts


def _remember_phone(plan: _Plan, line: int, cells: list[Any], index: int, seen: dict[str, int]) -> None:
    """What a skipped (already imported) row leaves for the duplicate check of the rows after it."""
    raw = _as_text(cells[index]) if index < len(cells) else ""
    if raw:
        try:
            seen.setdefault(_phone(raw, plan.country), line)
        except _Bad:
            pass


# -- results ------------------------------------------------------------------------------------------------------


def _import_job(session, actor: Actor, job_id: int) -> ContactJob:
    job = session.get(ContactJob, job_id) if isinstance(job_id, int) else None
    if job is None or job.workspace_id != actor.workspace_id or job.kind != "import":
        raise NotFound("contact_job", key="error.contact_job_not_found")
    return job


_FORMULA_START = ("=", "@", "\t", "\r")


def _safe_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (a leading ``'``), phones like "+55 11 ..." left alone."""
    if value.startswith(_FORMULA_START) or (
            value[:1] in ("+", "-") and not all(ch.isdigit() or ch in " ()-.+" for ch in value)):
        return "'" + value
    return value


def failed_rows_csv(actor: Actor, job_id: int) -> bytes:
    """The rows an import could not take, as a CSV to fix and import again: the file's columns plus ``erro``
    (every reason of the row, with its column). UTF-8 with BOM and ``;``, as Excel in Brazil opens it.

    Raises:
        PermissionDenied: an agent.
        NotFound: no such import job in the actor's workspace.
    """
    actor.require("admin", "supervisor")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    with session_scope() as session:
        job = _import_job(session, actor, job_id)
        headers = list(job.params.get("headers") or [])
        writer.writerow([*headers, t("import.failed.error_column")])
        rows: dict[int, tuple[list[str], list[str]]] = {}
        for error in session.scalars(select(ContactJobError).where(ContactJobError.job_id == job.id)
                                     .order_by(ContactJobError.line, ContactJobError.id)).yield_per(2000):
            cells, reasons = rows.setdefault(error.line, (list(error.row.get("cells") or []), []))
            reasons.append(f"{error.column}: {error.message}" if error.column else error.message)
    for cells, reasons in rows.values():
        cells = cells + [""] * (len(headers) - len(cells))
        writer.writerow([_safe_cell(cell) for cell in cells] + [_safe_cell("; ".join(reasons))])
    return out.getvalue().encode("utf-8-sig")
