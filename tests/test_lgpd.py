"""LGPD requests: a contact's export holds their data; erasure leaves nothing of their phone or name anywhere in
the database nor the media dir, keeps the counts, and the same person writing again is a new contact."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from connector.media import media_path, store_media
from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from workbench.base.errors import PermissionDenied
from workbench.services import contact_notes, contacts, lgpd
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, Conversation, Message

PHONE = "5511988887777"
NAME = "Joana Pereira"
PUSH = "Jojo Zangada"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND"
       b"\xaeB`\x82")


@pytest.fixture
def history(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    data_dir = get_settings().data_dir
    photo = store_media(data_dir, PNG, "image/png", "minha-foto.png")
    shared = store_media(data_dir, PNG + b"shared", "image/png", "aviso.png")
    publish(inbound(inst, PHONE, f"Oi, sou a {NAME}, meu fone é {PHONE}", push_name=PUSH),
            inbound(inst, PHONE, None, type="image", media=photo, push_name=PUSH),
            inbound(inst, PHONE, None, type="image", media=shared, push_name=PUSH),
            inbound(inst, "5511900000002", "outra pessoa", push_name="Carlos"),
            inbound(inst, "5511900000002", None, type="image", media=shared, push_name="Carlos"))
    run_jobs()
    with session_scope() as s:
        contact_id = s.scalar(select(Contact.id).where(Contact.phone == PHONE))
    contacts.update_contact(admin, contact_id, name=NAME, email="joana@example.com", company="Padaria Joana")
    contacts.add_tag(admin, contact_id, "cliente")
    contact_notes.add_note(admin, contact_id, f"{NAME} pediu desconto, ligar no {PHONE}")
    return {"ws": ws, "inst": inst, "admin": admin, "contact": contact_id, "photo": photo, "shared": shared}


def search_everywhere(*needles: str) -> list[str]:
    """Every text, varchar and jsonb column of every table, and every file under the media dir."""
    found = []
    with session_scope() as s:
        columns = s.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')")).all()
        for table, column in columns:
            for needle in needles:
                hits = s.scalar(text(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE :n'),
                                {"n": f"%{needle}%"})
                if hits:
                    found.append(f"{table}.{column}: {needle}")
    media = Path(get_settings().data_dir) / "media"
    for path in media.rglob("*") if media.exists() else []:
        if path.is_file():
            content = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in content]
    return found


def counts() -> dict[str, int]:
    with session_scope() as s:
        return {"contacts": s.scalar(select(func.count()).select_from(Contact)),
                "conversations": s.scalar(select(func.count()).select_from(Conversation)),
                "in": s.scalar(select(func.count()).where(Message.direction == "in")),
                "images": s.scalar(select(func.count()).where(Message.type == "image"))}


def test_export_holds_the_contacts_data_and_media(history):
    name, data = lgpd.export_contact(history["admin"], history["contact"])
    assert name.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {"contact.json", "conversations.json", "messages.csv", "contact.html", "activity.json"} <= names
    person = json.loads(archive.read("contact.json"))
    assert person["name"] == NAME and person["phone"] == PHONE and person["tags"] == ["cliente"]
    assert person["company"] == "Padaria Joana" and PHONE in person["notes"][0]["body"]
    threads = json.loads(archive.read("conversations.json"))
    assert [m["type"] for m in threads[0]["messages"]] == ["text", "image", "image"]
    assert archive.read(f"media/{history['photo'].sha256}") == PNG
    assert NAME in archive.read("messages.csv").decode()
    assert "<script" not in archive.read("contact.html").decode()
    with session_scope() as s:
        assert s.scalar(select(ActivityEvent.actor_user_id).where(ActivityEvent.kind == "contact_exported")) == \
            history["admin"].user_id


def test_only_admins_export_or_erase(history):
    supervisor = make_actor(history["ws"], role="supervisor")
    with pytest.raises(PermissionDenied):
        lgpd.export_contact(supervisor, history["contact"])
    with pytest.raises(PermissionDenied):
        lgpd.erase_contact(supervisor, history["contact"])
    other = make_actor(make_workspace("Outra"))
    with pytest.raises(Exception, match="contact"):
        lgpd.erase_contact(other, history["contact"])
    assert not search_everywhere("nothing-like-this") and search_everywhere(PHONE)


def test_erasure_leaves_no_trace_and_keeps_counts(history):
    before = counts()
    data_dir = get_settings().data_dir
    result = lgpd.erase_contact(history["admin"], history["contact"])
    assert result == {"messages": 3, "notes": 1, "media": 1}
    assert search_everywhere(PHONE, NAME, PUSH, "Padaria Joana", "joana@example.com") == []
    assert not media_path(data_dir, history["photo"].sha256).exists()
    assert media_path(data_dir, history["shared"].sha256).exists()  # another contact's message uses it
    assert counts() == before
    with session_scope() as s:
        event = s.scalars(select(ActivityEvent).where(ActivityEvent.kind == "contact_erased")).one()
        assert event.actor_user_id == history["admin"].user_id and event.created_at
    # the same person writing again is a new contact
    publish(inbound(history["inst"], PHONE, "voltei", push_name=PUSH))
    run_jobs()
    with session_scope() as s:
        again = s.scalar(select(Contact.id).where(Contact.phone == PHONE))
    assert again is not None and again != history["contact"]
    assert counts()["contacts"] == before["contacts"] + 1


def test_contact_page_exports_and_erases_for_admins_only(history):
    from tests.test_pages_contact import open_contact

    supervisor = make_actor(history["ws"], role="supervisor")
    assert not [b for b in open_contact(supervisor, history["contact"]).button if b.key == "lgpd_erase"]
    at = open_contact(history["admin"], history["contact"])
    assert not at.exception
    at = at.button(key="lgpd_export_prepare").click().run()
    assert not at.exception
    at = at.button(key="lgpd_erase").click().run()
    assert "Não dá para desfazer" in at.warning[0].value
    at = at.button(key="lgpd_erase_yes").click().run()
    assert not at.exception
    assert "Dados do contato apagados." in [s.value for s in at.success]
    assert search_everywhere(PHONE, NAME) == []


def test_retention_is_off_by_default_previews_then_empties_old_messages(history):
    from datetime import timedelta

    from sqlalchemy import update

    from workbench.base.clock import now
    from workbench.base.errors import InvalidInput
    from workbench.services import workspace_settings

    admin = history["admin"]
    with session_scope() as s:  # the contact's three messages are 40 days old, the others recent
        old_ids = s.scalars(select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
                            .where(Conversation.contact_id == history["contact"])).all()
        s.execute(update(Message).where(Message.id.in_(old_ids)).values(created_at=now() - timedelta(days=40)))
    before = counts()
    assert lgpd.apply_retention(history["ws"]) == {"messages": 0, "media": 0}  # off by default
    assert lgpd.retention_preview(admin, 30) == {"messages": 3, "media": 2, "days": 30}
    assert lgpd.retention_preview(admin, 60)["messages"] == 0
    with pytest.raises(InvalidInput):
        lgpd.retention_preview(admin, 0)
    with pytest.raises(PermissionDenied):
        workspace_settings.save_setting(make_actor(history["ws"], role="supervisor"), "retention",
                                        {"enabled": True, "days": 30})
    workspace_settings.save_setting(admin, "retention", {"enabled": True, "days": 30})
    assert lgpd.retention_preview(admin) == {"messages": 3, "media": 2, "days": 30}  # nothing changed yet
    assert lgpd.apply_retention_everywhere() == {history["ws"]: {"messages": 3, "media": 1}}
    assert search_everywhere("meu fone é") == []
    assert not media_path(get_settings().data_dir, history["photo"].sha256).exists()
    assert media_path(get_settings().data_dir, history["shared"].sha256).exists()
    assert counts() == before
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Message.text == "outra pessoa")) == 1  # recent: kept
    assert lgpd.retention_preview(admin)["messages"] == 0


def test_retention_section_on_the_settings_page(history):
    from tests.test_pages_settings import open_page

    at = open_page(history["admin"])
    assert not at.exception
    at.number_input(key="retention_days").set_value(30)
    at = at.button(key="retention_preview").click().run()
    assert not at.exception
    assert any("Com 30 dias" in i.value for i in at.info)
    at.toggle(key="retention_enabled").set_value(True)
    at = at.button(key="retention_save").click().run()
    assert "Retenção salva." in [s.value for s in at.success]


def test_dashboards_count_the_same_after_erasure_and_forget_the_name(history):
    from workbench.analytics import reports, store

    admin = history["admin"]
    period = reports.preset(admin, next(iter(reports.PRESETS)))
    store.refresh(full=True)
    before = reports.overview(admin, period)
    lgpd.erase_contact(admin, history["contact"])
    store.refresh()
    after = reports.overview(admin, period)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert value.equals(after[key]) if hasattr(value, "equals") else value == after[key], key
    assert store.query("SELECT count(*) AS n FROM contacts WHERE name = ? OR phone = ?", [NAME, PHONE])["n"][0] == 0
    store.close()
