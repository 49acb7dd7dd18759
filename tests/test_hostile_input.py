"""Hostile values at every edge (NUL, lone surrogates, 1e400, digits that are not ASCII, over-long text): each is
cleaned and stored, or refused at once with a pt-BR message; none reaches the database as an error, and no
contact event fails five times on one."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from connector.contracts import IN_ATTEMPTS_HASH, IN_FAILED_STREAM, drain_unit, wake_inbound_drain
from tests.factories import (
    contact_lane,
    inbound,
    lane_stream,
    make_actor,
    make_instance,
    make_workspace,
    publish,
    run_jobs,
)
from tests.test_media_library import PNG
from workbench.base.errors import InvalidInput
from workbench.base.i18n import error_text
from workbench.services import (
    contacts,
    conversations,
    funnels,
    instances,
    media_library,
    runs,
    workspace_settings,
    workspaces,
)
from workbench.store.db import session_scope
from workbench.store.models import Contact, Funnel, Media, Message, Notification, Tag

NUL = "Ma\x00ria"
SURROGATE = "Ma\ud800ria"
CLEANED = "Ma\ufffdria"
ARABIC_DIGITS = "٥٥١١٩٨٧٦٥٤٣٢١"  # 5511987654321 in Arabic-Indic digits
LONG = "x" * 100_000


@pytest.fixture
def inbox(engine, r):
    """(instance id, admin, contact id) of a workspace whose number received one message."""
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    publish(inbound(inst, phone="5511999990001"))
    run_jobs()
    with session_scope() as s:
        contact_id = s.scalar(select(Contact.id))
    return inst, admin, contact_id


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_contact_tags_names_and_fields_are_cleaned(inbox, value):
    inst, admin, contact_id = inbox
    assert contacts.add_tag(admin, contact_id, value) == CLEANED
    contacts.update_contact(admin, contact_id, name=value, custom_data={"nota": value})
    profile = contacts.contact_profile(admin, contact_id)
    assert (profile["name"], profile["custom_data"], profile["tags"]) == (CLEANED, {"nota": CLEANED}, [CLEANED])


def test_over_long_contact_values_are_refused_with_a_message(inbox):
    inst, admin, contact_id = inbox
    for call, limit in ((lambda: contacts.add_tag(admin, contact_id, LONG), "80"),
                        (lambda: contacts.update_contact(admin, contact_id, name=LONG), "255"),
                        (lambda: contacts.update_contact(admin, contact_id, custom_data={"nota": LONG}), "1000")):
        with pytest.raises(InvalidInput) as refused:
            call()
        assert f"{limit} caracteres" in error_text(refused.value)
    assert contacts.contact_profile(admin, contact_id)["tags"] == []


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_funnel_names_and_definitions_are_cleaned(inbox, value):
    _, admin, _ = inbox
    fid = funnels.create_funnel(admin, value, {"nodes": [{"id": value, "type": "end", "data": {"x": [value]}}],
                                               "edges": []})
    got = funnels.get_funnel(admin, fid)
    assert got["name"] == CLEANED
    assert got["draft"]["nodes"] == [{"id": CLEANED, "type": "end", "data": {"x": [CLEANED]}}]
    funnels.save_draft(admin, fid, {"nodes": [], "edges": [], value: value})
    assert funnels.get_funnel(admin, fid)["draft"] == {"nodes": [], "edges": [], CLEANED: CLEANED}


@pytest.mark.parametrize(("text", "reason"), [
    ('{"nodes": [], "edges": [], "x": 1e400}', "número"),
    ('{"nodes": [], "edges": [], "x": -1e400}', "número"),
    ('{"nodes": [], "edges": [], "x": Infinity}', "Infinity"),
    ('{"nodes": [], "edges": [], "x": ' + "9" * 5000 + "}", "número"),
    ('{"nodes": [], "edges": [], "x": ' + "9" * 20 + "}", "número"),
])
def test_imported_numbers_out_of_range_are_refused_with_the_reason(inbox, text, reason):
    _, admin, _ = inbox
    with pytest.raises(InvalidInput) as refused:
        funnels.import_funnel(admin, "Importado", text)
    assert refused.value.key == "error.funnel_import" and reason in error_text(refused.value)
    with session_scope() as s:
        assert s.scalars(select(Funnel)).all() == []


def test_imported_text_with_nul_and_surrogate_escapes_is_cleaned(inbox):
    _, admin, _ = inbox
    fid = funnels.import_funnel(admin, "Importado", '{"nodes": [], "edges": [], "a": "Ma\\u0000ria", '
                                                   '"b": "Ma\\ud800ria"}')
    assert funnels.get_funnel(admin, fid)["draft"] == {"nodes": [], "edges": [], "a": CLEANED, "b": CLEANED}


def test_a_non_finite_number_in_a_draft_is_refused(inbox):
    _, admin, _ = inbox
    fid = funnels.create_funnel(admin, "Rascunho")
    with pytest.raises(InvalidInput) as refused:
        funnels.save_draft(admin, fid, {"nodes": [], "edges": [], "x": float("inf")})
    assert refused.value.key == "error.value_number"
    assert funnels.get_funnel(admin, fid)["draft"] == funnels.EMPTY


@pytest.mark.parametrize("name", [SURROGATE + ".png", NUL + ".png"])
def test_media_file_names_are_cleaned(inbox, name):
    _, admin, _ = inbox
    item = media_library.upload_media(admin, name, PNG)
    assert item["filename"] in (CLEANED + ".png", "Ma_ria.png")
    with session_scope() as s:
        assert s.scalar(select(Media.filename)) == item["filename"]


def _publish_raw(r, instance_id: int, **changes) -> None:
    """Put an inbound message on the stream as a connector would, with fields no model would let through."""
    event = {**inbound(instance_id, phone="5511999990002").model_dump(mode="json"), **changes}
    r.xadd(lane_stream(instance_id, "5511999990002"), {"e": json.dumps(event)})
    wake_inbound_drain(r, instance_id, contact_lane(instance_id, "5511999990002"))


def test_contact_events_with_hostile_text_are_stored_cleaned(inbox, r):
    inst, admin, _ = inbox
    _publish_raw(r, inst, push_name=NUL + "x" * 400, text="oi\x00", raw={"k": NUL, NUL: 1},
                 media={"sha256": "0" * 64, "mime": "application/pdf", "size": 1, "filename": NUL + ".pdf"},
                 type="document")
    run_jobs()
    assert r.xlen(IN_FAILED_STREAM.format(inst)) == 0
    with session_scope() as s:
        contact = s.scalars(select(Contact).where(Contact.phone == "5511999990002")).one()
        assert contact.push_name == (CLEANED + "x" * 400)[:255]
        message = s.scalars(select(Message).where(Message.conversation_id.is_not(None))
                            .order_by(Message.id.desc())).first()
        assert message.text == "oi\ufffd"
        assert message.data["raw"] == {"k": CLEANED, CLEANED: 1}
        assert message.data["media"]["filename"] == CLEANED + ".pdf"


@pytest.mark.parametrize("changes", [
    {"phone": ARABIC_DIGITS},  # no WhatsApp digit left: no phone
    {"phone": "9" * 40},
    {"wa_id": "W" * 300},
    {"chat_jid": "x" * 300},
    {"quoted_id": "q" * 300},
])
def test_contact_events_that_cannot_be_stored_are_set_aside_at_once(inbox, r, changes):
    inst, _, _ = inbox
    _publish_raw(r, inst, **changes)
    publish(inbound(inst, phone="5511999990003", text="depois"))
    run_jobs()
    [(_, fields)] = r.xrange(IN_FAILED_STREAM.format(inst))
    assert fields[b"code"] == b"malformed"  # on its first try, not after five
    assert r.hlen(IN_ATTEMPTS_HASH.format(drain_unit(inst, contact_lane(inst, "5511999990002")))) == 0
    with session_scope() as s:
        assert s.scalar(select(Message.text).order_by(Message.id.desc())) == "depois"


def test_notification_texts_are_cleaned(inbox, r):
    inst, admin, _ = inbox
    definition = {"nodes": [
        {"id": "inicio", "type": "trigger", "data": {"kind": "first_message"}},
        {"id": "aviso", "type": "notify_human", "data": {"team_name": "Vendas", "message": "Novo: {{contact.name}}"}},
    ], "edges": [{"id": "e1", "source": "inicio", "target": "aviso"}]}
    fid = funnels.create_funnel(admin, "Aviso", definition)
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    runs.clear_cache()
    _publish_raw(r, inst, push_name=NUL)
    run_jobs()
    assert r.xlen(IN_FAILED_STREAM.format(inst)) == 0
    with session_scope() as s:
        assert s.scalar(select(Notification.body)) == "Novo: " + CLEANED
        assert s.scalar(select(Contact.push_name).where(Contact.phone == "5511999990002")) == CLEANED


def test_agent_replies_with_hostile_text_are_cleaned(inbox):
    inst, admin, _ = inbox
    conv_id = conversations.list_conversations(admin)[0]["id"]
    message_id = conversations.send_text(admin, conv_id, SURROGATE)
    with session_scope() as s:
        message = s.get(Message, message_id)
        assert (message.text, message.data.get("surrogates_replaced")) == (CLEANED, True)
        assert s.scalars(select(Tag)).all() == []


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_number_member_and_setting_texts_are_cleaned(inbox, value):
    _, admin, _ = inbox
    instance_id = instances.create_instance(admin, value)
    assert next(i["name"] for i in instances.list_instances(admin) if i["id"] == instance_id) == CLEANED
    workspaces.add_member(admin, f"novo{len(value)}@example.com", value, "agent")
    assert CLEANED in [m["name"] for m in workspaces.list_members(admin)]
    saved = workspace_settings.save_setting(admin, "default_reply", {"enabled": True, "text": value})
    assert saved.text == CLEANED
    assert workspace_settings.get_setting(admin, "default_reply").text == CLEANED


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_an_inbox_search_with_hostile_text_finds_nothing_rather_than_failing(inbox, value):
    _, admin, _ = inbox
    assert conversations.list_conversations(admin, search=value) == []
