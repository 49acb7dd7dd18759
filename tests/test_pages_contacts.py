"""Contatos page: the table, search and filters, pages, segments, bulk actions (inline, confirmed delete, a job's
progress) and the export button, on the real services."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.contact_rows import make_contact, make_field
from tests.factories import make_actor, make_instance, make_workspace
from tests.test_pages_app import signed_in_app
from workbench.services import contact_bulk, contact_list
from workbench.services.contact_list import list_contacts


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)
    at.run()
    return at.switch_page("pages/contacts.py").run()


def table(at: AppTest) -> list[str]:
    frames = [frame.value for frame in at.dataframe if "Nome" in frame.value.columns]  # not the conditions editor
    return list(frames[0]["Nome"]) if frames else []


def search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="contacts_f_search").input(text)
    return at.button(key="FormSubmitter:contacts_filter_form-Aplicar").click().run()


def test_agent_and_admin_see_their_contacts_search_and_page(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    agent = make_actor(ws, "agent")
    other = make_actor(ws, "agent")
    make_contact(ws, inst, "Ana <b>*negrito*</b>", phone="5511987654321", tags=("vip",))
    make_contact(ws, inst, "Bruno", agent_id=other.user_id)
    make_contact(ws, inst, "Carla", agent_id=agent.user_id)

    at = open_page(agent)
    assert not at.exception
    assert [t.value for t in at.title] == ["Contatos"]
    assert table(at) == ["Ana <b>*negrito*</b>", "Carla"]  # literal cells; not Bruno (another agent's)
    assert "Excluir contatos" not in at.selectbox(key="contacts_bulk_action").options
    assert "contacts_segment_save" not in [b.key for b in at.button]  # agents use segments, not manage them

    at = open_page(admin)
    assert table(at) == ["Ana <b>*negrito*</b>", "Bruno", "Carla"]
    assert "Excluir contatos" in at.selectbox(key="contacts_bulk_action").options
    at = search(at, "+55 (11) 98765-4321")
    assert not at.exception and table(at) == ["Ana <b>*negrito*</b>"]
    at = search(at, "")
    assert table(at) == ["Ana <b>*negrito*</b>", "Bruno", "Carla"]

    monkeypatch.setattr(contact_list, "PAGE_SIZE", 2)
    at = open_page(admin)
    assert table(at) == ["Ana <b>*negrito*</b>", "Bruno"]
    assert any("1–2 de 3" in c.value for c in at.caption)
    at = at.button(key="contacts_next").click().run()
    assert table(at) == ["Carla"]
    at = at.button(key="contacts_previous").click().run()
    assert table(at) == ["Ana <b>*negrito*</b>", "Bruno"]
    at = at.button(key="contacts_next").click().run()
    at = at.selectbox(key="contacts_sort").set_value("phone").run()
    assert table(at) == ["Bruno", "Carla"]  # sorted again, back on the first page
    at = at.toggle(key="contacts_descending").set_value(True).run()
    assert table(at) == ["Ana <b>*negrito*</b>", "Carla"]


def test_segment_saved_and_loaded_and_a_bad_filter_is_explained(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    make_contact(ws, inst, "Ana", tags=("vip",))
    make_contact(ws, inst, "Bia")
    at = open_page(admin)
    at.multiselect(key="contacts_f_tags_any").set_value(["vip"])
    at = at.button(key="FormSubmitter:contacts_filter_form-Aplicar").click().run()
    assert table(at) == ["Ana"]
    at.text_input(key="contacts_segment_name").input("Clientes VIP")
    at = at.button(key="contacts_segment_save").click().run()
    assert [s.value for s in at.success] == ["Segmento salvo."]
    segments = contact_list.list_segments(admin)
    assert [s["name"] for s in segments] == ["Clientes VIP"]

    at = open_page(admin)
    assert table(at) == ["Ana", "Bia"]
    at = at.selectbox(key="contacts_segment_pick").set_value(segments[0]["id"]).run()
    assert table(at) == ["Ana"]
    assert at.multiselect(key="contacts_f_tags_any").value == ["vip"]

    at.text_input(key="contacts_segment_name").input("clientes vip")
    at = at.button(key="contacts_segment_save").click().run()
    assert [e.value for e in at.error] == ["Já existe um segmento com esse nome."]


def test_field_conditions_show_in_their_editor_and_survive_applying_the_form(engine, r):
    """A segment's field conditions fill the conditions editor with pt-BR operator labels; applying the form reads
    them back into the same filter (labels mapped to operators), and the table follows."""
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    make_field(ws, "idade", "number")
    make_contact(ws, inst, "Ana", custom={"idade": 42, "cidade": "Recife"})
    make_contact(ws, inst, "Bia", custom={"idade": 25})
    make_contact(ws, inst, "Caio")
    conditions = [{"key": "idade", "op": "gt", "value": "30"}, {"key": "cidade", "op": "not_empty"}]
    segment = contact_list.save_segment(admin, "Mais de 30 com cidade", {"fields": conditions})
    at = open_page(admin)
    at = at.selectbox(key="contacts_segment_pick").set_value(segment).run()
    assert not at.exception and table(at) == ["Ana"]
    editor = next(frame.value for frame in at.dataframe if "key" in frame.value.columns)
    assert list(editor["key"]) == ["idade", "cidade"]
    assert list(editor["op"]) == ["é maior que", "não está vazio"]
    at = at.button(key="FormSubmitter:contacts_filter_form-Aplicar").click().run()
    assert not at.exception and table(at) == ["Ana"]
    saved = at.session_state["contacts_filter"]["fields"]
    assert [(c["key"], c["op"]) for c in saved] == [("idade", "gt"), ("cidade", "not_empty")]


def test_bulk_tags_inline_then_a_confirmed_delete(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    for name in ("Ana", "Bia", "Caio"):
        make_contact(ws, inst, name)
    at = open_page(admin)
    at.radio(key="contacts_bulk_scope").set_value("filter")
    at.selectbox(key="contacts_bulk_action").set_value("add_tags")
    at = at.run()
    at.multiselect(key="contacts_bulk_tags").set_value(["promo"])
    at = at.button(key="contacts_bulk_apply").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["3 contatos atualizados"]
    assert all(row["tags"] == ["promo"] for row in list_contacts(admin)["rows"])

    at.selectbox(key="contacts_bulk_action").set_value("delete")
    at = at.run()
    at = at.button(key="contacts_bulk_apply").click().run()
    assert [w.value for w in at.warning] == [
        "Excluir 3 contato(s) com suas conversas, mensagens e notas? Não dá para desfazer."]
    assert len(list_contacts(admin)["rows"]) == 3  # nothing yet
    at = at.button(key="contacts_bulk_confirm").click().run()
    assert [s.value for s in at.success] == ["3 contatos excluídos"]
    assert list_contacts(admin)["rows"] == []
    assert at.info[0].value == "Nenhum contato com esses filtros."


def test_a_large_action_becomes_a_job_with_progress(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    for i in range(4):
        make_contact(ws, inst, f"C{i}")
    monkeypatch.setattr(contact_bulk, "BULK_SYNC_LIMIT", 2)
    at = open_page(admin)
    at.radio(key="contacts_bulk_scope").set_value("filter")
    at.selectbox(key="contacts_bulk_action").set_value("add_tags")
    at = at.run()
    at.multiselect(key="contacts_bulk_tags").set_value(["lote"])
    at = at.button(key="contacts_bulk_apply").click().run()
    assert [i.value for i in at.info][0].startswith("4 contatos: a ação continua em segundo plano")
    assert at.get("progress")[0].proto.text == "0 de 4 contatos"
    job_id = at.session_state["contacts_job"][0]
    contact_bulk.run_job(job_id)  # what the worker does
    at = at.run()
    assert "4 contatos atualizados" in [s.value for s in at.success]
    assert at.get("download_button")  # the export button is there (it reads nothing until clicked)
