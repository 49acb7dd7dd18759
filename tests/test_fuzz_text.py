"""Fuzzing what people type: funnel authors' templates, phone numbers (the connectors' reading, the contact import's
normalisation, typed phone fields), contact imports end to end, and the searches of the Contatos list and the
inbox, on a real database that is dumped and checked afterwards (``tests/fuzzing.py``).
"""

from __future__ import annotations

import csv
import io

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connector.contracts import phone_digits
from engine.core import templates
from engine.core.templates import MAX_OUTPUT_CHARS, MAX_RENDER_WORK, check_syntax, render
from tests import fuzzing
from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from workbench.base.errors import WorkbenchError
from workbench.services import contact_fields, contact_import, contact_list, contacts, conversations
from workbench.store.db import session_scope

# -- templates -----------------------------------------------------------------------------------------------------

namespaces = st.fixed_dictionaries({
    "contact": st.fixed_dictionaries({"name": fuzzing.any_text, "phone": fuzzing.any_text,
                                      "tags": st.lists(fuzzing.any_text, max_size=3),
                                      "custom_data": st.dictionaries(fuzzing.any_text, fuzzing.json_values,
                                                                     max_size=3)}),
    "vars": st.dictionaries(st.sampled_from(["n", "x", "a"]), fuzzing.json_values, max_size=3),
    "last_reply": fuzzing.any_text, "history": fuzzing.any_text,
})


@fuzzing.scaled(0.5)
@given(text=fuzzing.any_text.map(lambda text: text.replace("{", "(")))
@example(text="linha 1\r\nlinha 2\n")
@example(text="100% }} fechado %} #}")
def test_a_text_without_template_syntax_renders_as_jinja_would_render_it(text):
    """``render`` skips Jinja for a text with no "{" (most funnel texts and option labels): the result must be
    exactly what the sandboxed environment makes of it."""
    result = render(text, {})
    compiled = templates._compile(text)
    if isinstance(compiled, str):  # too long: refused the same way
        assert result.error == compiled and result.text == ""
    else:
        assert (result.text, result.error, result.missing) == (compiled.render(), None, [])


@fuzzing.scaled(1.0)
@given(template=st.one_of(fuzzing.jinja_text(), fuzzing.any_text), namespace=namespaces)
@example(template="{{ contact.name * 99999 }}", namespace={"contact": {"name": "ab"}})
@example(template="{{ " + "(" * 300 + "1" + ")" * 300 + " }}", namespace={})
def test_templates_render_within_bounds_or_report_a_catalogued_error(template, namespace):
    problem = check_syntax(template)
    assert problem is None or fuzzing.catalog_key(problem), problem
    result = render(template, namespace)
    assert 0 <= result.work <= MAX_RENDER_WORK and len(result.text) <= MAX_OUTPUT_CHARS
    if result.error is not None:
        key = fuzzing.catalog_key(result.error)
        if key is None:
            raise fuzzing.Uncatalogued(f"template error not in the catalog: {result.error!r}")
        assert result.text == ""
    fuzzing.count("template", None if result.ok else key)


# -- phone numbers -------------------------------------------------------------------------------------------------

phones = st.one_of(
    st.text("0123456789", min_size=4, max_size=17),
    st.builds(lambda prefix, digits, sep: prefix + sep.join(digits), st.sampled_from(["", "+", "00", "+55 ", "0"]),
              st.lists(st.text("0123456789", min_size=1, max_size=5), max_size=5),
              st.sampled_from(["", " ", "-", "."])),
    st.sampled_from(["+55 (11) 98765-4321", "11 8765-4321", "011987654321", "+1 202 555 0143", "+351 912 345 678",
                     "5511987654321:12@s.whatsapp.net", "٥٥١١٩٨٧٦٥٤٣٢١", "+999 123456", "+0 123", "00"]),
    fuzzing.any_text,
)


@fuzzing.scaled(1.0)
@given(raw=phones, country=st.sampled_from([55, 1, 351, 44, 54, 999]))
@example(raw="+0000", country=55)
def test_phone_numbers_are_normalised_or_refused_with_a_catalogued_reason(raw, country):
    digits = phone_digits(raw)
    assert digits.isascii() and (digits == "" or digits.isdigit()) and phone_digits(digits) == digits
    try:
        phone = contact_import._phone(raw, country)
    except contact_import._Bad as bad:  # the import's row error: a pt-BR reason on the failed-rows file
        key = fuzzing.catalog_key(str(bad))
        assert key == "import.row.phone", str(bad)
        fuzzing.count("phone (import)", key)
    else:
        assert phone.isascii() and phone.isdigit() and len(phone) <= 17
        assert phonenumbers.is_valid_number(phonenumbers.parse("+" + phone))
        fuzzing.count("phone (import)")
    fuzzing.refused("phone (contact field)", lambda: contact_fields.coerce("phone", raw), WorkbenchError)


# -- in the database -----------------------------------------------------------------------------------------------

@pytest.fixture
def shop(engine, r):
    """(admin, number id) of a workspace whose number received messages from contacts with hostile names."""
    workspace = make_workspace()
    number = make_instance(workspace)
    admin = make_actor(workspace, "admin")
    names = ["Ana_Maria", "100% Ana", "a\\b", "Zoë", "ÁLVARO", "o'neil", "İsmail", "x" * 255, "50%_off"]
    publish(*(inbound(number, phone=f"55119876500{i:02d}", push_name=name) for i, name in enumerate(names)))
    run_jobs()
    return admin, number


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


cells = st.one_of(fuzzing.any_text, phones, st.sampled_from(["", "vip, novo", "ana@example.com", "a@b", "=1+2"]))


def test_contact_imports_are_whole_or_refused_and_searches_never_fail(shop):
    """Imports of fuzzed files, then searches of the Contatos list and the inbox over what they wrote; finally
    the database dump."""
    admin, number = shop

    @fuzzing.scaled(0.05)
    @given(rows=st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=6),
           header=st.sampled_from([["Telefone", "Nome", "E-mail", "Tags", "Empresa"], ["phone"], ["x", "Telefone"]]))
    def one_import(rows, header):
        data = _csv([header, *rows])
        upload, kind = fuzzing.refused("contact import file",
                                       lambda: contact_import.read_upload(admin, "c.csv", data), WorkbenchError)
        if kind is not None:
            return
        options = {"instance_id": number, "country": "55", "on_existing": "update", "tags": ["importado"]}
        report, kind = fuzzing.refused("contact import check", lambda: contact_import.validate(
            admin, upload.token, upload.mapping, options), WorkbenchError)
        if kind is not None:
            return
        for error in report["errors"]:
            assert fuzzing.catalog_key(error["message"]), error
        job_id, kind = fuzzing.refused("contact import", lambda: contact_import.start_import(
            admin, upload.token, upload.mapping, options), WorkbenchError)
        if kind is None:
            counts = contact_import.run_job(job_id)
            assert counts["failed"] == report["failed"] and counts["created"] + counts["updated"] + counts[
                "skipped"] == report["valid"]

    one_import()

    @fuzzing.scaled(0.2)
    @given(search=st.one_of(fuzzing.any_text, st.sampled_from(["%", "_", "\\", "100%", "Ana_", "a\\b", "%_%", "zoe",
                                                               "alvaro", "987650", "+55 11", "İ"])))
    @example(search="%")  # the inbox once read % and _ as wildcards
    @example(search="_")
    def one_search(search):
        page, kind = fuzzing.refused("contact list search", lambda: contact_list.list_contacts(
            admin, {"search": search}), WorkbenchError)
        found = conversations.list_conversations(admin, status=None, search=search)
        fuzzing.count("inbox search")
        wanted = search.strip()
        if wanted.isascii() and wanted:  # PostgreSQL and Python agree on ASCII case
            for row in found:
                assert any(wanted.lower() in (value or "").lower()
                           for value in (row["name"], row["push_name"], row["phone"])), (wanted, row)
        # The Contatos search text holds the field values as a JSON array's text, so its brackets, quotes, commas and
        # backslash escapes match too (changing that needs a migration of the generated column): not asserted.
        plain = not any(ch.isdigit() or ch in '[]",\\' for ch in wanted)
        if kind is None and wanted.isascii() and wanted and plain:
            for row in page["rows"]:
                profile = contacts.contact_profile(admin, row["id"])
                shown = " ".join(str(profile.get(k) or "") for k in ("name", "push_name", "email", "company"))
                shown = contact_list.searchable(shown + " " + str(profile.get("custom_data")))
                assert contact_list.searchable(wanted) in shown, (wanted, row)  # case and accents ignored

    one_search()
    with session_scope() as session:
        assert fuzzing.broken_invariants(session.connection()) == {}
