"""Links de entrada: code detection and stripping, attribution written once on a contact's first message, the
"entrou pelo link" trigger, no interference with keyword triggers, QR files, roles, and the page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.core.matching import (
    TriggerCandidate,
    TriggerEvent,
    entry_codes_in,
    looks_like_code,
    match_keyword,
    pick_trigger,
    strip_entry_codes,
)
from engine.core.nodes.trigger import TriggerData
from tests.factories import make_actor, make_instance, make_workspace
from tests.test_funnel_runtime import bot_texts, say, setup_workspace
from tests.test_pages_app import signed_in_app
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services import entry_links, funnels
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, EntryLink, EntryLinkContact

CODE = "K7MP3Q"


# -- pure ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, codes", [
    (f"Olá! Vi o anúncio no Instagram e quero saber mais (ref {CODE})", [CODE]),  # accents, extra text
    (f"ref {CODE.lower()}", [CODE]),  # the code alone, lower case
    (CODE, [CODE]),
    (f"Promoção!!! #{CODE}.", [CODE]),
    (f"ref {CODE} e também ref 9XW2AB", [CODE, "9XW2AB"]),  # two codes: in order
    (f"{CODE} {CODE}", [CODE]),
    ("amanhã às 10h, pode ser? abc234 banana", ["ABC234"]),  # shaped like a code; the workspace decides
    ("Olá, quero o cardápio", []),
    ("", []),
])
def test_code_shaped_words_are_found(text, codes):
    assert entry_codes_in(text) == codes


def test_the_code_shape():
    assert looks_like_code("k7mp3q")
    assert not looks_like_code("banana")  # no digit
    assert not looks_like_code("123456")  # no letter
    assert not looks_like_code("k7mp0q")  # 0 is not in the alphabet
    assert not looks_like_code("k7mp3qz")


def test_stripping_leaves_only_what_the_contact_wrote():
    assert strip_entry_codes(f"Quero a promo (ref {CODE})", [CODE]) == "Quero a promo ( )"
    assert strip_entry_codes(f"ref: {CODE.lower()}", [CODE]) == ""
    assert strip_entry_codes(f"oi #{CODE} oi", [CODE]) == "oi oi"
    assert strip_entry_codes("ref do pedido 123", [CODE]) == "ref do pedido 123"  # the marker alone stays
    # Keyword matching on the stripped text: "ref" and the code never match, the contact's words still do.
    assert match_keyword(strip_entry_codes(f"oi (ref {CODE})", [CODE]), ["oi"], "exact") == "oi"
    assert match_keyword(strip_entry_codes(f"oi (ref {CODE})", [CODE]), ["ref"], "contains") is None
    assert match_keyword(strip_entry_codes(f"oi (ref {CODE})", [CODE]), [CODE], "regex") is None


def test_the_entry_link_trigger():
    def cand(funnel_id, **data):
        return TriggerCandidate(funnel_id, "inicio", TriggerData(**data))

    any_link = cand(1, kind="entry_link")
    only_7 = cand(2, kind="entry_link", entry_link_ids=[7])
    first = cand(3, kind="first_message")
    message = TriggerEvent(kind="message", text="oi", is_new_contact=True)
    assert pick_trigger([any_link, only_7, first], message).candidate is first
    via_7 = TriggerEvent(kind="message", text="oi", is_new_contact=True, entry_link_id=7)
    assert pick_trigger([first, any_link], via_7).candidate is any_link  # more specific than first message
    assert pick_trigger([first, only_7], via_7).candidate is only_7
    via_8 = TriggerEvent(kind="message", text="oi", is_new_contact=True, entry_link_id=8)
    assert pick_trigger([first, only_7], via_8).candidate is first


# -- the service and the runtime --------------------------------------------------------------------------------

def trigger_funnel(trigger: dict, text: str) -> dict:
    return {"nodes": [{"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0}, "data": trigger},
                      {"id": "msg", "type": "send_message", "position": {"x": 300, "y": 0}, "data": {"text": text}}],
            "edges": [{"id": "e", "source": "inicio", "target": "msg", "label": "next"}]}


def attributed(phone: str) -> tuple[dict, list[int], list[dict]]:
    with session_scope() as s:
        contact = s.scalars(select(Contact).where(Contact.phone == phone)).one()
        links = list(s.scalars(select(EntryLinkContact.link_id).where(EntryLinkContact.contact_id == contact.id)))
        events = [e.data for e in s.scalars(select(ActivityEvent).where(
            ActivityEvent.subject_type == "contact", ActivityEvent.subject_id == contact.id,
            ActivityEvent.kind == "entry_link"))]
        return dict(contact.custom_data or {}), links, events


def counter(link_id: int) -> int:
    with session_scope() as s:
        return s.get(EntryLink, link_id).contacts_count


def test_a_first_message_with_the_code_attributes_the_contact_once(engine, r):
    ws, inst, admin, (link_funnel, keyword_funnel) = setup_workspace(
        ("Veio do Instagram",
         lambda: trigger_funnel({"kind": "entry_link"}, "Bem-vindo, {{contact.custom_data.origem}}!")),
        ("Cardápio", lambda: trigger_funnel({"kind": "keyword", "mode": "exact", "words": ["cardápio"]}, "Menu")))
    link = entry_links.create_link(admin, name="Bio do Instagram", instance_id=inst, source="Instagram",
                                   message="Olá! Quero saber da promoção", phone="+55 11 98888-7777",
                                   utm={"utm_source": "instagram", "utm_campaign": "verão", "utm_term": ""})
    assert link["text"] == f"Olá! Quero saber da promoção (ref {link['code']})"
    assert link["url"].startswith("https://wa.me/5511988887777?text=Ol%C3%A1%21%20Quero")
    code = link["code"]

    say(inst, f"Olá!! quero saber da promoção (ref {code.lower()}) por favor", phone="5511900000001")
    fields, links, events = attributed("5511900000001")
    assert fields == {"origem": "Instagram", "link_entrada": "Bio do Instagram", "utm_source": "instagram",
                      "utm_campaign": "verão"}
    assert links == [link["id"]] and counter(link["id"]) == 1
    assert events == [{"link_id": link["id"], "name": "Bio do Instagram", "source": "Instagram"}]
    assert bot_texts("5511900000001") == ["Bem-vindo, Instagram!"]

    # Later messages with the code change nothing: attribution is written once.
    say(inst, f"ref {code}", phone="5511900000001")
    assert attributed("5511900000001")[1:] == ([link["id"]], events) and counter(link["id"]) == 1

    # The code alone works too; a contact who already wrote before is not attributed by a later message.
    say(inst, code, phone="5511900000002")
    assert attributed("5511900000002")[1] == [link["id"]] and counter(link["id"]) == 2
    say(inst, "bom dia", phone="5511900000003")
    say(inst, f"ref {code}", phone="5511900000003")
    assert attributed("5511900000003")[1:] == ([], [])

    # The code never confuses keyword triggers: "cardápio (ref CODE)" is the exact keyword "cardápio".
    say(inst, f"cardápio (ref {code})", phone="5511900000003")
    assert bot_texts("5511900000003")[-1] == "Menu"
    # An unknown code-shaped word is left alone (and attributes nothing).
    say(inst, "ref 9XW2AB", phone="5511900000004")
    assert attributed("5511900000004")[1] == []


def test_two_codes_the_first_wins_and_existing_values_are_kept(engine, r):
    ws, inst, admin, _ = setup_workspace()
    site = entry_links.create_link(admin, name="Site", instance_id=inst, source="Site", phone="5511988887777")
    balcao = entry_links.create_link(admin, name="Balcão", instance_id=inst, source="QR no balcão",
                                     phone="5511988887777")
    say(inst, f"ref {balcao['code']} ref {site['code']}", phone="5511900000009")
    fields, links, _ = attributed("5511900000009")
    assert links == [balcao["id"]] and fields["origem"] == "QR no balcão"
    assert (counter(balcao["id"]), counter(site["id"])) == (1, 0)


def test_links_are_for_managers_of_their_own_workspace(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin, agent = make_actor(ws, "admin"), make_actor(ws, "agent")
    other = make_instance(make_workspace())
    with pytest.raises(PermissionDenied):
        entry_links.create_link(agent, name="X", instance_id=inst, source="Site", phone="5511988887777")
    with pytest.raises(PermissionDenied):
        entry_links.list_links(agent)
    with pytest.raises(NotFound):
        entry_links.create_link(admin, name="X", instance_id=other, source="Site", phone="5511988887777")
    for bad in ({"name": " "}, {"source": ""}, {"message": "x" * 501}, {"utm": {"utm_x": "a"}},
                {"utm": {"utm_source": "x" * 121}}, {"phone": None}):
        kwargs = {"name": "X", "instance_id": inst, "source": "Site", "phone": "5511988887777", **bad}
        with pytest.raises(InvalidInput):
            entry_links.create_link(admin, **kwargs)
    assert entry_links.list_links(admin) == []
    link = entry_links.create_link(admin, name="X", instance_id=inst, source="Site", phone="5511988887777")
    with pytest.raises(NotFound):
        entry_links.delete_link(make_actor(make_workspace(), "admin"), link["id"])
    entry_links.delete_link(admin, link["id"])
    assert entry_links.list_links(admin) == []


def test_qr_codes():
    url = entry_links.wa_url("5511988887777", f"Olá (ref {CODE})")
    assert entry_links.qr_code(url, "png").startswith(b"\x89PNG")
    assert b"<svg" in entry_links.qr_code(url, "svg")


def test_the_page(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    at = signed_in_app(admin)
    at.run()
    at = at.switch_page("pages/links.py").run()
    assert not at.exception
    assert any("Os cliques não podem ser contados" in i.value for i in at.info)
    nonce = 0
    at.text_input(key=f"links_name_{nonce}").set_value("**Bio** <b>x</b>")
    at.text_input(key=f"links_phone_{nonce}").set_value("5511988887777")
    at.text_area(key=f"links_message_{nonce}").set_value("Olá!")
    at = at.button(key="FormSubmitter:links_form_0-Criar link").click().run()
    assert not at.exception
    (link,) = entry_links.list_links(admin)
    assert link["instance_id"] == inst and link["source"] == "Instagram"  # the first suggestion
    assert "**Bio** <b>x</b>" in [t.value for t in at.main.text]  # literal
    assert link["url"] in [c.value for c in at.code]
    assert at.success[0].value == f"Link criado com o código {link['code']}."
    agent = make_actor(ws, "agent")
    at = signed_in_app(agent)
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/links.py")  # not in an agent's navigation; the service refuses them too (above)


def test_a_trigger_naming_another_workspaces_link_is_a_problem(engine, r):
    ws, inst, admin, _ = setup_workspace()
    mine = entry_links.create_link(admin, name="Bio", instance_id=inst, source="Site", phone="5511988887777")
    other_ws = make_workspace()
    other_admin = make_actor(other_ws, "admin")
    theirs = entry_links.create_link(other_admin, name="Deles", instance_id=make_instance(other_ws), source="Site",
                                     phone="5511988887777")
    definition = trigger_funnel({"kind": "entry_link", "entry_link_ids": [mine["id"], theirs["id"]]}, "Oi")
    problems = funnels.validate(admin, definition).errors
    assert [(p.code, p.node_id, p.message) for p in problems] == [
        ("unknown_reference", "inicio",
         f"data.entry_link_ids: o link de entrada {theirs['id']} não existe neste espaço de trabalho")]
