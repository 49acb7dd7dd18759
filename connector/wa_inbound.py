"""Reading WhatsApp: neonize's message and receipt events as the neutral contracts (``InboundMessage``, ``Receipt``).

What one event becomes, with no connection state: ``connector.neonize_transport`` hands each event to an
``InboundMapper`` together with the client that received it. The client is asked only for what the event
itself cannot tell (the phone number behind a LID, the media bytes, the choices of an encrypted vote), so a
test maps real neonize protobufs with a fake client and no transport.

- A vote on a poll arrives as a ``pollUpdateMessage`` that ``decrypt_poll_vote`` opens into SHA-256 hashes of
  the chosen options' names; the options of each poll this number sent are kept in Redis
  (``contracts.POLL_OPTIONS_KEY``, written by the transport after the send) to read the vote back as its label.
- Media is downloaded and stored in the media store at once (WhatsApp's links expire); a message whose media
  cannot be had still arrives, with ``raw["media_error"]`` (``too_large``, ``unknown_size``, ``download_failed``,
  ``store_failed``). The sender's declared length and links are checked before anything is fetched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import redis
from neonize.events import MessageEv, ReceiptEv
from neonize.exc import NeonizeError
from neonize.proto.Neonize_pb2 import JID
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, ProtocolMessage

from connector.contracts import (
    MAX_TIMESTAMP_MS,
    POLL_OPTIONS_KEY,
    InboundMessage,
    MediaRef,
    Receipt,
    now_ms,
    phone_digits,
)
from connector.media import MediaError, MediaTooLarge, max_media_bytes, store_media

log = logging.getLogger(__name__)

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"

# Messages that only wrap another one (view once, disappearing, documents with captions, edits ...).
_WRAPPERS = (
    "deviceSentMessage", "ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension",
    "documentWithCaptionMessage", "editedMessage", "lottieStickerMessage", "botInvokeMessage",
)
# Fields that travel next to the content and are not content themselves.
_NOT_CONTENT = ("messageContextInfo", "senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage")
_MEDIA = {
    "imageMessage": "image", "audioMessage": "audio", "videoMessage": "video", "ptvMessage": "video",
    "documentMessage": "document", "stickerMessage": "sticker",
}
_POLLS = (
    "pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3", "pollCreationMessageV4",
    "pollCreationMessageV5", "pollCreationMessageV6",
)
_RECEIPTS = {ReceiptEv.DELIVERED: "delivered", ReceiptEv.READ: "read", ReceiptEv.PLAYED: "read"}
# Where media may be fetched from (see _download_request): printable ASCII with no user part, port, backslash
# or fragment that could hide another host.
_URL_CHARS = r"[^\x00-\x20\x7f-\U0010ffff\\@#]*"
_MEDIA_URL = re.compile(r"https://(?:[a-z0-9-]+\.)+whatsapp\.net/" + _URL_CHARS)
_DIRECT_PATH = re.compile(r"/(?!/)" + _URL_CHARS)


def jid_str(jid: JID) -> str:
    """``user@server`` without the device part (one chat, whatever device wrote in it)."""
    return f"{jid.User}@{jid.Server}" if jid.User else jid.Server


def content_field(message: Message) -> tuple[str, Any] | None:
    """The message's content field (name and value), or None when it carries none (key exchanges only)."""
    for descriptor, value in message.ListFields():
        if descriptor.name not in _NOT_CONTENT:
            return descriptor.name, value
    return None


def to_ms(timestamp: int) -> int:
    """neonize encodes message times in milliseconds (older builds: seconds); 0 means unknown, and so does a time
    past the year 9999 (the sender's clock, not a real moment): the message is kept, with the time it arrived."""
    ms = timestamp if timestamp > 10**11 else timestamp * 1000
    return ms if 0 < ms <= MAX_TIMESTAMP_MS else now_ms()


def _has(message: Any, field: str) -> bool:
    """Whether a protobuf message has ``field`` set (False for plain values such as a conversation's str)."""
    descriptor = getattr(message, "DESCRIPTOR", None)
    return descriptor is not None and field in descriptor.fields_by_name and message.HasField(field)


def _unwrap(message: Message) -> Message:
    """The message inside wrappers (whatsmeow usually unwraps already; this costs nothing when it did)."""
    for _ in range(6):
        for field in _WRAPPERS:
            if _has(message, field) and _has(getattr(message, field), "message"):
                message = getattr(message, field).message
                break
        else:
            return message
    return message


def _text_of(message: Message) -> str | None:
    """The readable text of a message: its text or its media caption."""
    message = _unwrap(message)
    if message.conversation:
        return message.conversation
    if _has(message, "extendedTextMessage"):
        return message.extendedTextMessage.text or None
    for field in ("imageMessage", "videoMessage", "documentMessage"):
        if _has(message, field):
            return getattr(message, field).caption or None
    return None


class InboundMapper:
    """Maps one number's neonize events to the neutral contracts (see the module docstring).

    Args:
        instance_id: the number's instance id (stamped on every contract).
        redis_client: where the options of the polls this number sent are kept.
        data_dir: the product's data dir (media goes to its store).
        accept_groups: map group messages too; without it they are ignored.
    """

    def __init__(self, instance_id: int, *, redis_client: Any, data_dir: Path, accept_groups: bool) -> None:
        self.instance_id = instance_id
        self.redis = redis_client
        self.data_dir = Path(data_dir)
        self.accept_groups = accept_groups

    def receipt(self, event: ReceiptEv) -> Receipt | None:
        """The neutral receipt for a ``ReceiptEv``, or None when it tells nothing about the contact (receipts
        from our own devices, kinds the product does not show)."""
        status = _RECEIPTS.get(event.Type)
        if status is None or event.MessageSource.IsFromMe or not event.MessageIDs:
            return None
        source = event.MessageSource
        chat = source.Chat
        if chat.Server == LID_SERVER and source.SenderAlt.User and source.SenderAlt.Server != LID_SERVER:
            chat = source.SenderAlt  # the phone the ack of the message names (the command's to_phone)
        return Receipt(instance_id=self.instance_id, wa_ids=list(event.MessageIDs), status=status,
                       timestamp_ms=to_ms(event.Timestamp), chat=chat.User or None)

    def message(self, client: Any, event: MessageEv, own: JID | None = None) -> InboundMessage | None:
        """The neutral message for a ``MessageEv`` that ``client`` received, or None for what the product
        ignores (status broadcasts, groups unless accepted, key exchanges and other protocol messages, notes
        to self: messages between ``own``, the number's JID, and itself)."""
        info = event.Info
        source = info.MessageSource
        chat = source.Chat
        if chat.Server in ("broadcast", "newsletter"):
            return None  # status@broadcast, broadcast lists, channels
        group = source.IsGroup or chat.Server == GROUP_SERVER
        if group and not self.accept_groups:
            return None
        message = _unwrap(event.Message)
        found = content_field(message)
        if found is None:
            return None
        field, content = found
        from_me = source.IsFromMe
        if group:
            person = self._resolve(client, source.Sender, source.SenderAlt)
            chat_jid = jid_str(chat)
        else:
            # The contact is the chat's other side: the sender of what they wrote, the recipient of what we
            # wrote from the phone.
            if from_me:
                person = self._resolve(client, chat, source.RecipientAlt)
            else:
                person = self._resolve(client, source.Sender, source.SenderAlt)
            chat_jid = jid_str(person)
            if own is not None and person.User == own.User:
                return None  # the number's notes to itself
        sender_jid = jid_str(source.Sender) if from_me else jid_str(person)
        raw: dict[str, Any] = {"wa_type": field}
        if person.Server == LID_SERVER:
            raw["lid"] = True  # no phone number known yet; the digits are the LID's
        if event.IsViewOnce or event.IsViewOnceV2:
            raw["view_once"] = True
        if field == "pollUpdateMessage":
            fields = self._vote(client, event, content, raw)
        else:
            fields = self._content(client, message, field, content, raw, info.ID)
        if fields is None:
            return None
        return InboundMessage(
            instance_id=self.instance_id, wa_id=info.ID, chat_jid=chat_jid, sender_jid=sender_jid,
            phone=phone_digits(person.User), push_name=None if from_me else (info.Pushname or None),
            timestamp_ms=to_ms(info.Timestamp), from_me=from_me, raw=raw, **fields,
        )

    def _resolve(self, client: Any, jid: JID, alt: JID) -> JID:
        """A phone-number JID for a LID (WhatsApp's hidden id), so one person is one contact."""
        if jid.Server != LID_SERVER:
            return jid
        if alt.User and alt.Server != LID_SERVER:
            return alt
        try:
            found = client.get_pn_from_lid(jid)
        except Exception as exc:  # noqa: BLE001 - unknown mapping: keep the LID
            log.info("instance %s: no phone number for a LID (%s)", self.instance_id, exc)
            return jid
        return found if found.User and found.Server != LID_SERVER else jid

    def _content(self, client: Any, message: Message, field: str, content: Any, raw: dict[str, Any],
                 wa_id: str) -> dict[str, Any] | None:
        """Type, text, media, quoted and target ids of one content field; None to skip the message."""
        quoted = None
        if _has(content, "contextInfo") and content.contextInfo.stanzaID:
            quoted = content.contextInfo.stanzaID
        out: dict[str, Any] = {"quoted_id": quoted}
        if field == "conversation":
            out.update(type="text", text=content)
        elif field == "extendedTextMessage":
            out.update(type="text", text=content.text)
        elif field in _MEDIA:
            out.update(type=_MEDIA[field], text=getattr(content, "caption", "") or None)
            if field == "audioMessage":
                raw["ptt"] = bool(content.PTT)
            if getattr(content, "seconds", 0):
                raw["seconds"] = content.seconds
            filename = content.fileName if field == "documentMessage" else None
            out["media"] = self._download(client, field, content, filename, raw, wa_id)
        elif field in ("locationMessage", "liveLocationMessage"):
            raw.update(latitude=content.degreesLatitude, longitude=content.degreesLongitude,
                       live=field == "liveLocationMessage")
            for key in ("name", "address"):
                if getattr(content, key, ""):
                    raw[key] = getattr(content, key)
            out.update(type="location", text=None)
        elif field == "contactMessage":
            raw.update(display_name=content.displayName, vcard=content.vcard)
            out.update(type="contact", text=None)
        elif field == "contactsArrayMessage":
            raw.update(display_name=content.displayName,
                       contacts=[{"display_name": c.displayName, "vcard": c.vcard} for c in content.contacts])
            out.update(type="contact", text=None)
        elif field == "reactionMessage":
            raw["removed"] = not content.text  # an empty reaction takes the earlier one back
            out.update(type="reaction", text=content.text or None, target_id=content.key.ID or None)
        elif field == "protocolMessage":
            if content.type == ProtocolMessage.REVOKE:
                out.update(type="revoke", text=None, target_id=content.key.ID or None)
            elif content.type == ProtocolMessage.MESSAGE_EDIT:
                out.update(type="edit", text=_text_of(content.editedMessage), target_id=content.key.ID or None)
            else:
                return None  # history sync, key shares, ephemeral settings ...: not messages
        elif field in _POLLS:
            raw.update(options=[o.optionName for o in content.options],
                       selectable=content.selectableOptionsCount)
            out.update(type="poll", text=content.name or None)
        else:
            raw["type"] = field
            out.update(type="unsupported", text=None)
        return out

    def _vote(self, client: Any, event: MessageEv, content: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
        """A vote on a poll: the chosen option's label as text (what a waiting choices node matches); a vote
        that cannot be read stays an ``unsupported`` message; a withdrawn vote (nothing chosen) is skipped."""
        poll_id = content.pollCreationMessageKey.ID or None
        raw["poll_id"] = poll_id
        try:
            chosen = list(client.decrypt_poll_vote(event).selectedOptions)
        except NeonizeError as exc:  # no key for that poll (not sent from this device) or a corrupt vote
            log.warning("instance %s: vote on poll %s not decrypted: %s", self.instance_id, poll_id, exc)
            return self._unreadable_vote(raw, poll_id, "undecryptable")
        if not chosen:
            log.info("instance %s: vote on poll %s withdrawn; ignored", self.instance_id, poll_id)
            return None
        try:
            stored = self.redis.get(POLL_OPTIONS_KEY.format(self.instance_id, poll_id))
        except redis.RedisError as exc:
            log.warning("instance %s: options of poll %s unreadable (%s)", self.instance_id, poll_id, exc)
            return self._unreadable_vote(raw, poll_id, "options_unavailable")
        if stored is None:
            return self._unreadable_vote(raw, poll_id, "unknown_poll")  # not ours, or expired
        by_hash = {hashlib.sha256(option.encode()).digest(): option for option in json.loads(stored)}
        labels = [by_hash.get(digest) for digest in chosen]
        if None in labels:
            return self._unreadable_vote(raw, poll_id, "unknown_option")
        raw["poll_vote"] = True
        return {"type": "text", "text": ", ".join(labels), "quoted_id": poll_id}

    @staticmethod
    def _unreadable_vote(raw: dict[str, Any], poll_id: str | None, reason: str) -> dict[str, Any]:
        raw.update(type="pollUpdateMessage", poll_error=reason)
        return {"type": "unsupported", "text": None, "quoted_id": poll_id}

    def _download(self, client: Any, field: str, content: Any, filename: str | None, raw: dict[str, Any],
                  wa_id: str) -> MediaRef | None:
        """Download and store a message's media; on failure the message still arrives, with ``media_error``.

        The sender writes every field of a media message, so none is taken on trust: a file that does not declare
        its length, or declares one over the cap, is not downloaded (whatsmeow downloads the whole body before it
        compares it with the declared length, so the declaration is all that bounds the download); the length
        received is checked again; and only WhatsApp's media hosts are contacted (``_download_request``).
        """
        limit = max_media_bytes()
        declared = getattr(content, "fileLength", 0)
        if declared > limit:
            raw["media_error"] = "too_large"  # not even downloaded
            return None
        if declared <= 0:
            raw["media_error"] = "unknown_size"  # nothing would bound the download
            return None
        request = _download_request(field, content)
        if request is None:
            log.warning("instance %s: media of %s names no WhatsApp media host; not downloaded", self.instance_id,
                        wa_id)
            raw["media_error"] = "download_failed"
            return None
        try:
            data = client.download_any(request)
        except Exception as exc:  # noqa: BLE001 - expired media, network, decryption: report, don't drop
            # The type only: the message of a network error carries the media URL and its access tokens.
            log.warning("instance %s: media of %s not downloaded: %s", self.instance_id, wa_id, type(exc).__name__)
            raw["media_error"] = "download_failed"
            return None
        if not isinstance(data, bytes | bytearray) or not data:
            raw["media_error"] = "download_failed"
            return None
        if len(data) > limit:
            raw["media_error"] = "too_large"
            return None
        try:
            return store_media(self.data_dir, bytes(data), content.mimetype, filename, max_bytes=limit)
        except MediaTooLarge:
            raw["media_error"] = "too_large"
        except (MediaError, OSError) as exc:
            log.warning("instance %s: media of %s not stored: %s", self.instance_id, wa_id, exc)
            raw["media_error"] = "store_failed"
        return None


def _download_request(field: str, content: Any) -> Message | None:
    """The message to hand to ``download_any``: the media field alone, pointing only at WhatsApp's media hosts.

    whatsmeow fetches the sender's ``URL`` as given when there is one, and otherwise joins a media host and the
    ``directPath``, so either could make the connector request any address (its own network included). A ``URL``
    that is not HTTPS on a ``whatsapp.net`` host is dropped (the direct path is used), and a direct path that is
    not a plain absolute path refuses the download. None when nothing safe is left.
    """
    request = Message()
    media = getattr(request, field)
    media.CopyFrom(content)
    if media.URL and not _MEDIA_URL.fullmatch(media.URL):
        media.URL = ""
    if media.directPath and not _DIRECT_PATH.fullmatch(media.directPath):
        media.directPath = ""
    return request if media.URL or media.directPath else None
