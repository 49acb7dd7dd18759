"""Contacts service: profile, tags and custom fields, with the inbox's visibility rules and validation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.factories import inbound, inbox_with_one_conversation, make_actor, make_workspace, publish, run_jobs
from workbench.base.errors import InvalidInput, NotFound
from workbench.services import contacts, conversations
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Instance


def setup(role: str = "admin"):
    """(instance id, actor, contact id) of a workspace whose number got one message from Maria."""
    inst, actor, conversation_id = inbox_with_one_conversation(role)
    return inst, actor, conversations.get_conversation(actor, conversation_id)["contact"]["id"]


def test_profile_shows_the_contact(engine, r):
    _, actor, contact_id = setup()
    assert contacts.contact_profile(actor, contact_id) == {
        "id": contact_id, "name": None, "push_name": "Maria", "phone": "5511999990001", "email": None,
        "company": None, "custom_data": {}, "tags": [], "odoo_lead": None}


def test_add_tag_trims_reuses_any_case_and_lists_counts(engine, r):
    inst, actor, contact_id = setup()
    publish(inbound(inst, phone="5511999990002", push_name="João"))
    run_jobs()
    other_id = next(c["contact_id"] for c in conversations.list_conversations(actor) if c["contact_id"] != contact_id)
    assert contacts.add_tag(actor, contact_id, "  Cliente   VIP ") == "Cliente VIP"
    assert contacts.add_tag(actor, other_id, "cliente vip") == "Cliente VIP"  # the existing tag, not a new one
    contacts.add_tag(actor, contact_id, "cliente VIP")  # already carried: nothing changes
    contacts.add_tag(actor, contact_id, "agendamento")
    assert contacts.contact_profile(actor, contact_id)["tags"] == ["agendamento", "Cliente VIP"]
    assert [(t["name"], t["contacts"]) for t in contacts.list_tags(actor)] == [("agendamento", 1), ("Cliente VIP", 2)]

    contacts.remove_tag(actor, contact_id, "CLIENTE vip")
    contacts.remove_tag(actor, contact_id, "never-there")  # nothing to remove: no error
    assert contacts.contact_profile(actor, contact_id)["tags"] == ["agendamento"]
    contacts.remove_tag(actor, other_id, "Cliente VIP")
    assert [(t["name"], t["contacts"]) for t in contacts.list_tags(actor)] == [("agendamento", 1), ("Cliente VIP", 0)]
    with session_scope() as s:
        kinds = s.scalars(select(ActivityEvent.kind).where(ActivityEvent.subject_type == "contact")
                          .order_by(ActivityEvent.id)).all()
    assert kinds == ["tag_added", "tag_added", "tag_added", "tag_removed", "tag_removed"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_tag_names_are_checked(engine, r, name):
    _, actor, contact_id = setup()
    with pytest.raises(InvalidInput) as caught:
        contacts.add_tag(actor, contact_id, name)
    assert caught.value.key == "error.tag_name" and caught.value.context == {"max": 80}
    assert contacts.list_tags(actor) == []


def test_changes_bump_the_revision_only_when_something_changed(engine, r):
    _, actor, contact_id = setup()
    before = conversations.revision(actor)
    contacts.update_contact(actor, contact_id, name=None, custom_data={})  # nothing to change
    contacts.remove_tag(actor, contact_id, "nenhuma")
    assert conversations.revision(actor) == before
    contacts.add_tag(actor, contact_id, "vip")
    assert conversations.revision(actor) == before + 1
    contacts.add_tag(actor, contact_id, "VIP")
    assert conversations.revision(actor) == before + 1
    contacts.update_contact(actor, contact_id, name="Maria Souza")
    assert conversations.revision(actor) == before + 2


def test_update_name_and_fields(engine, r):
    _, actor, contact_id = setup("agent")
    contacts.update_contact(actor, contact_id, name="  Maria Souza ", custom_data={"email": " maria@ex.com ",
                                                                                   "plano": "Ouro"})
    profile = contacts.contact_profile(actor, contact_id)
    assert (profile["name"], profile["custom_data"]) == ("Maria Souza", {"email": "maria@ex.com", "plano": "Ouro"})
    # the page sends its rows as pairs: blank rows are skipped, an empty value removes the field
    contacts.update_contact(actor, contact_id, custom_data=[("email", "m@ex.com"), ("plano", ""), ("", None),
                                                            ("cidade_2", "Recife")])
    profile = contacts.contact_profile(actor, contact_id)
    assert profile["custom_data"] == {"email": "m@ex.com", "cidade_2": "Recife"} and profile["name"] == "Maria Souza"
    contacts.update_contact(actor, contact_id, name="")
    assert contacts.contact_profile(actor, contact_id)["name"] is None  # the push name shows again
    assert conversations.get_conversation(actor, conversations.list_conversations(actor)[0]["id"])["contact"][
        "display_name"] == "Maria"


@pytest.mark.parametrize("fields, key, context", [
    ([("1campo", "x")], "error.field_key", {"n": 1}),
    ([("email", "x"), ("e-mail", "x")], "error.field_key", {"n": 2}),
    ([("", "sem nome")], "error.field_key", {"n": 1}),
    ([("ação", "x")], "error.field_key", {"n": 1}),
    ([("x" * 65, "x")], "error.field_key", {"n": 1}),
    ([("email", "a"), ("email", "b")], "error.field_duplicate", {"n": 2}),
    ([("idade", [30])], "error.field.text", {"field": "idade", "max": 1000}),
    ([("nota", "x" * 1001)], "error.field.text_long", {"field": "nota", "max": 1000}),
    ([(f"campo{i}", "x") for i in range(51)], "error.field_count", {"max": 50}),
])
def test_invalid_fields_are_refused_by_position_or_valid_key(engine, r, fields, key, context):
    _, actor, contact_id = setup()
    contacts.update_contact(actor, contact_id, custom_data={"antes": "fica"})
    with pytest.raises(InvalidInput) as caught:
        contacts.update_contact(actor, contact_id, name="Não salva", custom_data=fields)
    assert (caught.value.key, caught.value.context) == (key, context)
    profile = contacts.contact_profile(actor, contact_id)
    assert (profile["name"], profile["custom_data"]) == (None, {"antes": "fica"})


def test_name_too_long(engine, r):
    _, actor, contact_id = setup()
    with pytest.raises(InvalidInput) as caught:
        contacts.update_contact(actor, contact_id, name="x" * 256)
    assert caught.value.key == "error.contact_name"


def test_contacts_outside_the_actors_view_are_not_found(engine, r):
    inst, admin, contact_id = setup()
    with session_scope() as s:
        workspace_id = s.get(Instance, inst).workspace_id
    agent, pedro = make_actor(workspace_id, "agent"), make_actor(workspace_id, "agent")
    contacts.add_tag(agent, contact_id, "vip")  # unassigned: every agent sees it
    conversation_id = conversations.list_conversations(admin)[0]["id"]
    conversations.assign(admin, conversation_id, agent_id=pedro.user_id)
    stranger = make_actor(make_workspace("Outra loja"), "admin")
    calls = [
        lambda actor: contacts.contact_profile(actor, contact_id),
        lambda actor: contacts.add_tag(actor, contact_id, "intruso"),
        lambda actor: contacts.remove_tag(actor, contact_id, "vip"),
        lambda actor: contacts.update_contact(actor, contact_id, name="Intruso"),
    ]
    for actor in (agent, stranger):
        for call in calls:
            with pytest.raises(NotFound) as caught:
                call(actor)
            assert caught.value.key == "error.contact_not_found"
    with pytest.raises(NotFound):
        contacts.contact_profile(admin, contact_id + 1000)
    assert contacts.list_tags(stranger) == []
    profile = contacts.contact_profile(pedro, contact_id)
    assert (profile["name"], profile["tags"]) == (None, ["vip"])
    assert [t["name"] for t in contacts.list_tags(admin)] == ["vip"]  # nothing was created by the refused calls
