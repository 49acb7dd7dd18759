"""Importar contatos page: the wizard from upload to summary (mapping, options, errors by line, progress, the
failed-rows download), refusals shown in Portuguese, file text shown literally, and agents kept out."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import PASSWORD, make_actor, make_instance, make_workspace
from tests.test_contact_import import PNG, csv_bytes
from tests.test_pages_app import login, new_app, signed_in_app
from workbench.services import contact_import
from workbench.store.db import session_scope
from workbench.store.models import ContactJob

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "contacts_import.py")
HOSTILE = "**x** <b>y</b> [l](http://e.vil)"


@pytest.fixture
def admin(engine, r):
    ws = make_workspace()
    make_instance(ws, "Vendas")
    return make_actor(ws, "admin")


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)
    at.run()
    return at.switch_page("pages/contacts_import.py").run()


def upload(at: AppTest, data: bytes, name: str = "contatos.csv") -> AppTest:
    at.file_uploader(key="import_file_0").set_value([(name, data, "text/csv")])
    return at.button(key="import_read").click().run()


def test_the_wizard_from_upload_to_summary(admin):
    data = csv_bytes([["Nome", "Telefone", HOSTILE],
                      [HOSTILE, "11987654321", "a"],
                      ["Bia", "123", "b"],
                      ["Caio", "+55 11 98765-4321", "c"]], delimiter=";", encoding="cp1252")
    at = open_page(admin)
    assert not at.exception
    assert [t.value for t in at.title] == ["Importar contatos"]
    at = upload(at, data)
    assert not at.exception
    assert "contatos.csv" in [t.value for t in at.text] and HOSTILE in [t.value for t in at.text]
    assert not any(HOSTILE in m.value for m in at.markdown), "file text is never Markdown"
    preview = at.dataframe[0].value
    assert list(preview.columns) == ["Nome", "Telefone", HOSTILE] and preview.iloc[0, 0] == HOSTILE
    assert [at.selectbox(key=f"import_map_{i}").value for i in range(3)] == ["name", "phone", "ignore"]
    at.selectbox(key="import_map_2").set_value("new")
    at.multiselect(key="import_tags").set_value(["Feira"])
    at.radio(key="import_on_existing").set_value("fill")
    at = at.button(key="import_validate").click().run()
    assert not at.exception
    assert [m.value for m in at.metric] == ["3", "1", "2", "0"]
    errors = at.dataframe[0].value
    assert errors.values.tolist() == [
        [3, "Telefone", "Telefone inválido."],
        [4, "Telefone", "Telefone repetido no arquivo (já aparece na linha 2)."]]
    at = at.button(key="import_start").click().run()
    assert not at.exception
    assert len(at.get("progress")) == 1  # queued: the bar shows while the worker has not finished
    with session_scope() as s:
        job_id = s.query(ContactJob.id).scalar()
    contact_import.run_job(job_id)
    at = at.run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Importação concluída."]
    assert [m.value for m in at.metric] == ["1", "0", "0", "2"]
    download = at.get("download_button")[0]
    assert download.proto.label == "Baixar linhas com erro (CSV)"
    at = at.button(key="import_new").click().run()
    assert at.file_uploader(key="import_file_1")


def test_refusals_are_shown_and_nothing_moves_on(admin):
    at = open_page(admin)
    at = at.button(key="import_read").click().run()
    assert [e.value for e in at.error] == ["Escolha um arquivo antes."]
    at = upload(at, PNG, "contatos.csv")
    assert [e.value for e in at.error] == [
        "Esse arquivo não é um CSV nem uma planilha XLSX. No Excel, use Salvar como › CSV ou Pasta de Trabalho do "
        "Excel (.xlsx)."]
    at = upload(at, b"")
    assert [e.value for e in at.error] == [
        "O arquivo está vazio: não há nenhuma linha de contato depois da linha com os nomes das colunas."]
    at = upload(at, csv_bytes([["Nome", "Celular"], ["Ana", "11987654321"]]))
    at.selectbox(key="import_map_1").set_value("ignore")
    at = at.button(key="import_validate").click().run()
    assert [e.value for e in at.error] == ["Escolha qual coluna tem o telefone."]
    assert at.button(key="import_validate")  # still on the mapping step


def test_agents_do_not_get_the_page(engine, r):
    ws = make_workspace()
    agent = make_actor(ws, "agent")
    at = login(new_app().run(), agent.email, PASSWORD)
    assert not at.exception
    with pytest.raises(ValueError):  # not in the agent's navigation
        at.switch_page("pages/contacts_import.py")
    direct = AppTest.from_file(PAGE, default_timeout=60)
    direct.session_state["auth_actor"] = agent
    direct.run()
    assert [i.value for i in direct.info] == ["Só administradores e supervisores importam contatos."]
    assert not direct.file_uploader
