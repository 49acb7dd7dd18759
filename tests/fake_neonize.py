"""A fake of the neonize 0.5.2 client surface the connector uses (this module holds no tests).

WhatsApp's servers cannot be reached from the test suite, so ``FakeWhatsApp`` plays them and ``FakeClient``
stands in for ``neonize.client.NewClient``. Only what ``connector.neonize_transport`` (with ``wa_inbound`` and
``wa_outbound``) calls is faked, and it behaves as the real client does where the connector depends on it:

- ``client.event(EvClass)`` is a decorator that registers one handler per event class and returns None;
  ``client.event.qr(fn)`` sets the QR callback, called as ``fn(client, code_bytes)``;
- ``connect()`` blocks until ``stop()``; for a session without a paired device it shows ``qr_codes`` QR codes
  (one every ``qr_interval_s``) and then idles, dead, as whatsmeow does after its QR series;
- ``PairPhone`` raises ``PairPhoneError("client is nil")`` until ``connect()`` has started;
- ``upload`` and the media builders refuse a ``str`` file (neonize would read it as a path or fetch it as a
  URL); every upload lands on the fake server, and the builders upload as neonize's do;
- only the image and document builders exist: neonize's audio and video builders run ffmpeg, which a pip
  install lacks, so a transport calling them must fail the tests as it would fail in production;
- calling a stopped client raises, where the real one would dereference nil in Go and kill the process;
- polls: ``build_poll_vote_creation`` gives the poll a secret as whatsmeow does, the server keeps the secret of
  each poll sent, and ``decrypt_poll_vote`` opens only votes made with it (``FakeWhatsApp.poll_vote`` casts one;
  whatsmeow's AES-GCM is replaced by an HMAC tag, which fails the same way on a wrong or missing key).

Events are real neonize protobufs (``neonize.events.MessageEv`` is ``Neonize_pb2.Message`` ...), built by
the tests and delivered with ``client.fire(event)``, one at a time like neonize's single event goroutine.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neonize.events import EVENT_TO_INT, ConnectedEv, MessageEv, PairStatusEv
from neonize.exc import (
    DecryptPollVoteError,
    DownloadError,
    GetJIDFromStoreError,
    LogoutError,
    NeonizeError,
    PairPhoneError,
)
from neonize.proto.Neonize_pb2 import JID, Device, SendResponse, UploadResponse
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    DocumentMessage,
    ImageMessage,
    Message,
    MessageContextInfo,
    PollCreationMessage,
    PollEncValue,
    PollUpdateMessage,
    PollVoteMessage,
)
from neonize.utils.enum import ClientName, MediaType, VoteType

DEADLINE_S = 30.0
_MEDIA_FIELDS = ("imageMessage", "audioMessage", "videoMessage", "documentMessage", "stickerMessage", "ptvMessage")


def make_jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    """A neonize JID protobuf."""
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def jid_text(jid: JID) -> str:
    """``user@server`` of a JID (as the fake records recipients)."""
    return f"{jid.User}@{jid.Server}"


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"fake neonize: timed out waiting for {what}")
        time.sleep(0.01)


class _Events:
    """``client.event``: the handler registry of one client, as neonize's ``Event`` class."""

    def __init__(self) -> None:
        self.handlers: dict[type, Callable[[Any, Any], None]] = {}
        self.qr_callback: Callable[[Any, bytes], None] | None = None

    def __call__(self, event_class: type) -> Callable[[Callable[[Any, Any], None]], None]:
        if event_class not in EVENT_TO_INT:  # neonize raises KeyError for a class it cannot subscribe to
            raise KeyError(event_class)

        def register(func: Callable[[Any, Any], None]) -> None:
            self.handlers[event_class] = func

        return register

    def qr(self, func: Callable[[Any, bytes], None]) -> None:
        self.qr_callback = func


class FakeWhatsApp:
    """WhatsApp's side for fake clients: paired devices, QR codes, pairing codes, media, what was sent.

    Args:
        qr_codes: QR codes in a pairing series (whatsmeow: 6).
        qr_interval_s: time between two QR codes.
    """

    def __init__(self, qr_codes: int = 6, qr_interval_s: float = 0.3) -> None:
        self.qr_codes = qr_codes
        self.qr_interval_s = qr_interval_s
        self.lock = threading.Lock()
        self.clients: list[FakeClient] = []
        self.devices: dict[str, JID] = {}  # session file -> the device paired in it
        self.push_names: dict[str, str] = {}
        self.lids: dict[str, JID] = {}  # LID user -> phone-number JID
        self.blobs: dict[bytes, bytes] = {}  # fileSHA256 -> media bytes "on WhatsApp's media servers"
        self.sent: list[dict[str, Any]] = []  # {"session", "to", "message", "id"}
        self.uploads: list[tuple[bytes, MediaType | None]] = []  # (file, media type) of each client.upload
        self.downloads: list[Message] = []  # what each download_any was asked to fetch
        self.chat_presences: list[tuple[str, Any]] = []  # (to, ChatPresence)
        self.presences: list[Any] = []
        self.reads: list[dict[str, Any]] = []
        self.logouts: list[str] = []
        self.pair_requests: list[tuple[str, str]] = []  # (phone, code)
        self.connect_errors = 0  # the next N connect() calls raise NeonizeError
        self.pair_phone_error: str | None = None
        self.send_errors: list[Exception] = []  # raised by the next send_message calls, in order
        self.qr_gate = threading.Event()  # connect() waits here before it starts (the Go client's setup)
        self.qr_gate.set()
        self.on_chat_presence: Callable[[Any], None] | None = None  # a hook run before a typing indicator
        self.poll_secrets: dict[str, bytes] = {}  # WhatsApp id of a poll sent -> its message secret

    # -- clients ---------------------------------------------------------------------------------------------

    def factory(self, name: str, jid: JID | None = None, uuid: str | None = None, **extra: Any) -> FakeClient:
        """The ``client_factory`` for ``NeonizeTransport``: what ``NewClient(name, jid=, uuid=)`` would be."""
        client = FakeClient(self, name, jid=jid, uuid=uuid, **extra)
        with self.lock:
            self.clients.append(client)
        return client

    def client(self, index: int = -1, count: int | None = None, timeout: float = DEADLINE_S) -> FakeClient:
        """A client made so far (the latest by default), waiting until ``count`` clients exist."""
        needed = count if count is not None else (index + 1 if index >= 0 else 1)
        _wait_for(lambda: len(self.clients) >= needed, timeout, f"{needed} clients")
        with self.lock:
            return self.clients[index]

    # -- pairing ---------------------------------------------------------------------------------------------

    def scan(self, client: FakeClient, phone: str, push_name: str = "Loja") -> None:
        """The phone ``phone`` scans ``client``'s QR code: pair it, as whatsmeow reports it."""
        _wait_for(lambda: client.qr_shown, DEADLINE_S, "a QR code to scan")
        self._link(client, phone, push_name)

    def enter_pair_code(self, code: str, phone: str, push_name: str = "Loja") -> bool:
        """Type a pairing code on the phone; False when no client asked for it for that phone."""
        with self.lock:
            wanted = [c for c in self.clients if c.pair_code == code and c.pair_phone == phone]
        if not wanted or wanted[0].stopped.is_set():
            return False
        self._link(wanted[0], phone, push_name)
        return True

    def _link(self, client: FakeClient, phone: str, push_name: str) -> None:
        device = make_jid(phone, device=7)
        with self.lock:
            self.devices[client.name] = device
            self.push_names[client.name] = push_name
        client.paired.set()
        client.fire(PairStatusEv(ID=make_jid(phone), BusinessName=push_name, Platform="android",
                                 Status=PairStatusEv.SUCCESS))
        client.fire(ConnectedEv(status=True))

    # -- polls -----------------------------------------------------------------------------------------------

    def poll_vote(self, poll_id: str, option_names: list[str], secret: bytes | None = None) -> Message:
        """The ``pollUpdateMessage`` a contact's phone sends to vote ``option_names`` (none: withdraw the vote)
        on the poll ``poll_id``, encrypted with the poll's secret (or ``secret``, to forge a bad one)."""
        with self.lock:
            key = secret if secret is not None else self.poll_secrets[poll_id]
        payload = PollVoteMessage(selectedOptions=[hashlib.sha256(n.encode()).digest() for n in option_names])
        iv = secrets.token_bytes(12)
        body = payload.SerializeToString()
        tag = hmac.new(key, iv + body, hashlib.sha256).digest()
        return Message(pollUpdateMessage=PollUpdateMessage(
            pollCreationMessageKey=MessageKey(ID=poll_id, fromMe=True),
            vote=PollEncValue(encPayload=body + tag, encIV=iv), senderTimestampMS=int(time.time() * 1000)))

    def decrypt_vote(self, update: PollUpdateMessage) -> PollVoteMessage:
        """Open a vote with its poll's secret, as whatsmeow does (see ``poll_vote``)."""
        with self.lock:
            key = self.poll_secrets.get(update.pollCreationMessageKey.ID)
        if key is None:
            raise DecryptPollVoteError("failed to get message secret: original message secret key not found")
        body, tag = update.vote.encPayload[:-32], update.vote.encPayload[-32:]
        if not hmac.compare_digest(tag, hmac.new(key, update.vote.encIV + body, hashlib.sha256).digest()):
            raise DecryptPollVoteError("failed to decrypt poll vote: cipher: message authentication failed")
        return PollVoteMessage.FromString(body)

    # -- media -----------------------------------------------------------------------------------------------

    def upload(self, data: bytes) -> bytes:
        """Put media "on WhatsApp's servers"; returns the fileSHA256 a message refers to it by."""
        digest = hashlib.sha256(data).digest()
        with self.lock:
            self.blobs[digest] = data
        return digest


class FakeClient:
    """Stands in for ``neonize.client.NewClient`` (see the module docstring)."""

    def __init__(self, server: FakeWhatsApp, name: str, jid: JID | None = None, props: Any = None,
                 uuid: str | None = None, new_device: bool = False) -> None:
        self.server = server
        self.name = name
        self.jid = jid
        self.props = props
        self.uuid = uuid
        self.new_device = new_device
        self.event = _Events()
        self.connect_started = threading.Event()
        self.stopped = threading.Event()
        self.paired = threading.Event()
        self.qr_shown = 0
        self.pair_phone: str | None = None
        self.pair_code: str | None = None
        self._dispatch = threading.Lock()  # neonize delivers events one at a time

    # -- connection ------------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and block until ``stop()``: resume the stored device, or show a QR series."""
        if self.server.connect_errors > 0:
            self.server.connect_errors -= 1
            raise NeonizeError("dial tcp: lookup web.whatsapp.com: no such host")
        self.server.qr_gate.wait()
        Path(self.name).parent.mkdir(parents=True, exist_ok=True)
        Path(self.name).touch()  # whatsmeow creates its SQLite store on connect
        self.connect_started.set()
        with self.server.lock:
            device = self.server.devices.get(self.name)
        if device is not None and (self.jid is None or self.jid.User == device.User):
            self.fire(ConnectedEv(status=True))
        else:
            for number in range(self.server.qr_codes):
                if self.stopped.is_set() or self.paired.is_set():
                    break
                code = f"2@fake-{number}-{secrets.token_urlsafe(12)},{secrets.token_urlsafe(8)}"
                with self._dispatch:
                    self.qr_shown += 1
                    if self.event.qr_callback is not None:
                        self.event.qr_callback(self, code.encode())
                deadline = time.monotonic() + self.server.qr_interval_s
                while time.monotonic() < deadline and not (self.stopped.is_set() or self.paired.is_set()):
                    self.stopped.wait(0.01)
            # As whatsmeow after its QR series: disconnected, idle until stopped.
        self.stopped.wait()

    def stop(self) -> None:
        """End ``connect()``; the client must not be used afterwards."""
        self.stopped.set()

    def disconnect(self) -> None:
        self.stopped.set()

    @property
    def is_connected(self) -> bool:
        return self.connect_started.is_set() and not self.stopped.is_set()

    @property
    def is_logged_in(self) -> bool:
        with self.server.lock:
            return self.is_connected and self.name in self.server.devices

    def fire(self, event: Any) -> bool:
        """Deliver a neonize event to the registered handler; False when none is registered for its class."""
        self._alive()
        with self._dispatch:
            handler = self.event.handlers.get(type(event))
            if handler is None:
                return False
            handler(self, event)
            return True

    def _alive(self) -> None:
        if self.stopped.is_set():
            raise RuntimeError("fake neonize: a stopped client was used (the real one would crash the process)")

    # -- pairing and session ---------------------------------------------------------------------------------

    def PairPhone(self, phone: str, show_push_notification: bool,  # noqa: N802 - neonize's name
                  client_name: ClientName = ClientName.LINUX, client_type: Any = None) -> str:
        """A pairing code for ``phone``; raises as neonize does before connect() runs."""
        if not self.connect_started.is_set() or self.stopped.is_set():
            raise PairPhoneError("client is nil")
        if self.server.pair_phone_error:
            raise PairPhoneError(self.server.pair_phone_error)
        raw = secrets.token_hex(4).upper()
        code = f"{raw[:4]}-{raw[4:]}"  # whatsmeow formats the 8 characters as XXXX-XXXX
        self.pair_phone, self.pair_code = phone, code
        with self.server.lock:
            self.server.pair_requests.append((phone, code))
        return code

    def get_me(self) -> Device:
        self._alive()
        with self.server.lock:
            device = self.server.devices.get(self.name)
            return Device(JID=device or JID(), PushName=self.server.push_names.get(self.name, ""))

    def logout(self) -> None:
        self._alive()
        with self.server.lock:
            if self.server.devices.pop(self.name, None) is None:
                raise LogoutError("not logged in")
            self.server.logouts.append(self.name)

    def get_pn_from_lid(self, jid: JID) -> JID:
        self._alive()
        with self.server.lock:
            found = self.server.lids.get(jid.User)
        if found is None:
            raise GetJIDFromStoreError("no phone number for that LID")
        return found

    # -- media -----------------------------------------------------------------------------------------------

    def upload(self, binary: Any, media_type: MediaType | None = None) -> UploadResponse:
        """Encrypt-and-upload, as neonize's ``upload``: the media lands on the fake server."""
        self._alive()
        if not isinstance(binary, bytes):
            raise AssertionError(f"fake neonize: a {type(binary).__name__} file would be read as a path or URL")
        digest = self.server.upload(binary)
        with self.server.lock:
            self.server.uploads.append((binary, media_type))
        media_key = secrets.token_bytes(32)
        return UploadResponse(url=f"https://mmg.whatsapp.net/v/t62/{digest.hex()}", DirectPath=f"/v/t62/{digest.hex()}",
                              MediaKey=media_key, FileEncSHA256=hashlib.sha256(media_key + binary).digest(),
                              FileSHA256=digest, FileLength=len(binary))

    def build_image_message(self, file: Any, caption: str | None = None, quoted: Any = None,
                            viewonce: bool = False, **_: Any) -> Message:
        upload = self.upload(file, MediaType.MediaImage)
        return Message(imageMessage=ImageMessage(caption=caption, mimetype="image/png", fileLength=upload.FileLength,
                                                 fileSHA256=upload.FileSHA256, viewOnce=viewonce))

    def build_document_message(self, file: Any, caption: str | None = None, title: str | None = None,
                               filename: str | None = None, mimetype: str | None = None, quoted: Any = None,
                               **_: Any) -> Message:
        upload = self.upload(file, MediaType.MediaDocument)
        return Message(documentMessage=DocumentMessage(
            caption=caption, title=title, fileName=filename, mimetype=mimetype or "application/octet-stream",
            fileLength=upload.FileLength, fileSHA256=upload.FileSHA256))

    def build_poll_vote_creation(self, name: str, options: list[str], selectable_count: VoteType,
                                 quoted: Any = None) -> Message:
        """A single- or multiple-choice poll with a fresh message secret, as neonize's builder returns it."""
        self._alive()
        if not isinstance(selectable_count, VoteType):
            raise AssertionError("fake neonize: selectable_count is a VoteType (neonize reads its .value)")
        return Message(
            pollCreationMessage=PollCreationMessage(
                name=name, options=[PollCreationMessage.Option(optionName=o) for o in options],
                selectableOptionsCount=selectable_count.value),
            messageContextInfo=MessageContextInfo(messageSecret=secrets.token_bytes(32)))

    def decrypt_poll_vote(self, message: MessageEv) -> PollVoteMessage:
        """The choices of a vote event (neonize passes the whole ``MessageEv``)."""
        self._alive()
        if not isinstance(message, MessageEv):
            raise AssertionError("fake neonize: decrypt_poll_vote takes the MessageEv, not its Message")
        return self.server.decrypt_vote(message.Message.pollUpdateMessage)

    def download_any(self, message: Message, path: str | None = None) -> bytes:
        self._alive()
        with self.server.lock:
            self.server.downloads.append(message)
        for field in _MEDIA_FIELDS:
            if message.HasField(field):
                with self.server.lock:
                    data = self.server.blobs.get(getattr(message, field).fileSHA256)
                if data is None:
                    raise DownloadError("failed to download media: 404 (media expired)")
                return data
        raise DownloadError("no downloadable media in the message")

    # -- sending ---------------------------------------------------------------------------------------------

    def send_message(self, to: JID | str, message: Message | str, link_preview: bool = False,
                     **_: Any) -> SendResponse:
        self._alive()
        if not isinstance(to, JID) or not isinstance(message, Message):
            raise AssertionError("fake neonize: the transport sends protobufs, not strings")
        with self.server.lock:
            error = self.server.send_errors.pop(0) if self.server.send_errors else None
        if error is not None:
            raise error
        wa_id = "3EB0" + secrets.token_hex(8).upper()
        with self.server.lock:
            self.server.sent.append({"session": self.name, "to": jid_text(to), "message": message, "id": wa_id})
            if message.HasField("pollCreationMessage"):  # whatsmeow keeps a sent poll's secret to read its votes
                self.server.poll_secrets[wa_id] = message.messageContextInfo.messageSecret
        return SendResponse(ID=wa_id, Timestamp=int(time.time()), Message=message)

    def send_chat_presence(self, jid: JID, state: Any, media: Any) -> None:
        self._alive()
        if self.server.on_chat_presence is not None:
            self.server.on_chat_presence(state)
        with self.server.lock:
            self.server.chat_presences.append((jid_text(jid), state))

    def send_presence(self, presence: Any) -> None:
        self._alive()
        with self.server.lock:
            self.server.presences.append(presence)

    def mark_read(self, *message_ids: str, chat: JID, sender: JID, receipt: Any, timestamp: int | None = None) -> None:
        self._alive()
        with self.server.lock:
            self.server.reads.append({"ids": list(message_ids), "chat": jid_text(chat), "sender": jid_text(sender),
                                      "receipt": receipt})
