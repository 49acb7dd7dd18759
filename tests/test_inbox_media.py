"""Media from the inbox: uploads and library items of every kind go out through the outbox like text; the library's
rules refuse bad files; captions only where WhatsApp shows them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from connector.contracts import OUT_STREAM, decode_outbound
from tests.factories import make_actor, make_instance, make_workspace
from tests.test_media_library import EXE, MP4, OPUS, PDF, PNG
from tests.test_team_routing import _conv, _conversation
from workbench.base.errors import InvalidInput, NotFound
from workbench.base.i18n import error_text
from workbench.services import inbox_media, media_library
from workbench.store.db import session_scope
from workbench.store.models import Media, Message, Outbox


@pytest.fixture
def chat(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    agent = make_actor(ws, "agent")
    conv = _conversation(ws, inst, agent_id=agent.user_id)
    return {"ws": ws, "inst": inst, "admin": admin, "agent": agent, "conv": conv}


def _commands(r, inst: int):
    return [decode_outbound(fields) for _, fields in r.xrange(OUT_STREAM.format(inst))]


@pytest.mark.parametrize("data, filename, kind, caption", [
    (PNG, "foto.png", "image", "Nossa vitrine"),
    (MP4, "video.mp4", "video", "Como usar"),
    (PDF, "proposta.pdf", "document", "Segue a proposta"),
    (OPUS, "audio.ogg", "audio", ""),
])
def test_an_agent_sends_each_kind_uploaded_through_the_outbox(chat, r, data, filename, kind, caption):
    message_id = inbox_media.send_media(chat["agent"], chat["conv"], filename=filename, data=data, caption=caption)
    [command] = _commands(r, chat["inst"])
    assert (command.type, command.text or "") == (kind, caption)
    assert (command.media.size, command.media.filename) == (len(data), filename)
    with session_scope() as s:
        message = s.get(Message, message_id)
        assert (message.type, message.direction, message.sent_by_user_id) == (kind, "out", chat["agent"].user_id)
        media = s.get(Media, message.media_id)
        assert media.sha256 == command.media.sha256 and media.in_library is False  # an upload is not a library item
        assert s.scalar(select(func.count(Outbox.id))) == 1
    conv = _conv(chat["conv"])
    assert conv.bot_paused and conv.last_message_type == kind and conv.first_reply_at is not None


def test_a_library_item_is_sent_by_id_and_another_workspace_item_is_not_found(chat, r):
    item = media_library.upload_media(chat["admin"], "promo.png", PNG)
    inbox_media.send_media(chat["agent"], chat["conv"], media_id=item["id"], caption="Promoção")
    [command] = _commands(r, chat["inst"])
    assert (command.type, command.text, command.media.filename) == ("image", "Promoção", "promo.png")
    other = make_actor(make_workspace("Outra"), "admin")
    theirs = media_library.upload_media(other, "deles.pdf", PDF)
    with pytest.raises(NotFound):
        inbox_media.send_media(chat["agent"], chat["conv"], media_id=theirs["id"])
    with pytest.raises(NotFound):
        inbox_media.send_media(chat["agent"], chat["conv"], media_id="1 OR 1=1")


def test_refused_files_say_why_and_send_nothing(chat, r):
    agent, conv = chat["agent"], chat["conv"]
    with pytest.raises(InvalidInput) as info:
        inbox_media.send_media(agent, conv, filename="virus.exe", data=EXE)
    assert "O WhatsApp não aceita esse tipo de arquivo" in error_text(info.value)
    with pytest.raises(InvalidInput) as info:
        inbox_media.send_media(agent, conv, filename="vazio.png", data=b"")
    assert error_text(info.value) == "O arquivo está vazio."
    with pytest.raises(InvalidInput) as info:
        inbox_media.send_media(agent, conv, filename="audio.ogg", data=OPUS, caption="ouça")
    assert "legenda em áudio" in error_text(info.value)
    with pytest.raises(InvalidInput):
        inbox_media.send_media(agent, conv, filename="foto.png", data=PNG, caption="x" * 1025)
    with pytest.raises(InvalidInput):
        inbox_media.send_media(agent, conv)
    someone_else = make_actor(chat["ws"], "agent")
    with pytest.raises(NotFound):  # not a conversation they see
        inbox_media.send_media(someone_else, conv, filename="foto.png", data=PNG)
    assert _commands(r, chat["inst"]) == []
    with session_scope() as s:
        assert s.scalar(select(func.count(Message.id))) == 0


def _wav(seconds: float, rate: int = 44_100, channels: int = 2) -> bytes:
    """A recording as the browser gives it: WAV, here a 440 Hz tone."""
    import io

    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    out = io.BytesIO()
    soundfile.write(out, np.column_stack([tone] * channels), rate, format="WAV")
    return out.getvalue()


def test_a_browser_recording_goes_out_as_a_voice_note(chat, r, servers):
    from pathlib import Path

    from connector.wa_outbound import build_message, recipient
    from tests.fake_neonize import FakeClient, FakeWhatsApp

    message_id = inbox_media.send_voice_note(chat["agent"], chat["conv"], _wav(2.5))
    [command] = _commands(r, chat["inst"])
    assert command.type == "audio" and command.text is None
    assert "ogg" in command.media.mime and command.media.filename == "nota-de-voz.ogg"
    with session_scope() as s:
        assert s.get(Message, message_id).type == "audio"
    # the connector's builder, on the fake neonize client, sends it as push-to-talk with its length
    client = FakeClient(FakeWhatsApp(), "bench")
    audio = build_message(client, command, recipient(command.to_phone), Path(servers["WORKBENCH_DATA_DIR"]))
    assert audio.audioMessage.PTT is True
    assert audio.audioMessage.seconds in (2, 3)


def test_bad_recordings_are_refused_plainly(chat, r):
    agent, conv = chat["agent"], chat["conv"]
    with pytest.raises(InvalidInput) as info:
        inbox_media.send_voice_note(agent, conv, b"RIFF nada disso")
    assert error_text(info.value) == "Não deu para ler a gravação. Grave de novo."
    with pytest.raises(InvalidInput) as info:
        inbox_media.send_voice_note(agent, conv, _wav(0))
    assert error_text(info.value) == "A gravação está vazia. Grave de novo."
    with pytest.raises(InvalidInput) as info:  # refused from the header, before decoding 16 minutes
        inbox_media.send_voice_note(agent, conv, _wav(16 * 60, rate=8_000, channels=1))
    assert error_text(info.value) == "A nota de voz pode ter no máximo 15 minutos."
    assert _commands(r, chat["inst"]) == []
