"""Real WhatsApp numbers through neonize (Python bindings of whatsmeow): the transport of one number.

One connector process runs one number, so one ``NewClient`` lives here at a time. Its session (whatsmeow's
device keys) is a SQLite file per instance, so numbers never resume each other's device::

    <data_dir>/sessions/<instance>.sqlite3     whatsmeow's store (deleted on logout)
    <data_dir>/sessions/<instance>.jid.json    the paired device's JID, passed back as ``jid=`` on restart

The directory is 0700 and its files 0600 (the connector also runs with umask 077, which the Go driver honours).

Threads::

    connection   builds a client, registers every handler, then blocks in ``client.connect()`` (neonize runs
                 the Go loop until ``client.stop()``); retries with back-off when connect raises NeonizeError
    actions      panel controls (reconnect, logout, pair_phone, restart_pairing), work that must not run
                 inside a neonize callback (stopping the client, presence), and the QR-series watchdog
    neonize's    event callbacks: map to the neutral contracts and hand them to the relay, one at a time

Things neonize 0.5.2 does that shape this module (docs/libraries.md, "neonize"):

- whatsmeow shows 6 QR codes (60 s, then 20 s each) and then gives up without telling Python; the client
  idles, dead. A watchdog notices that no new code came in time, stops the client and waits in
  ``awaiting_qr``/``qr_expired`` until the panel asks again (reconnect or restart_pairing).
- ``PairPhone`` only works while ``connect()`` runs ("client is nil" before): it is called after the first
  QR callback, never earlier.
- After ``stop()`` the Go side forgets the client; calling any method on it then dereferences nil and kills
  the process. Senders borrow the client under a counter, and it is only stopped once nobody holds it.
- The client's garbage-collection finalizer calls Go's ``Stop(uuid)``; with a fixed uuid that would stop
  the *next* client. It is detached once we have stopped the client ourselves.

What an event or a command becomes is not decided here: ``connector.wa_inbound`` maps events to the neutral
contracts and ``connector.wa_outbound`` builds the messages to send (media, polls, and what neonize's own
helpers would get wrong), both without connection state.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neonize.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import NeonizeError
from neonize.proto.Neonize_pb2 import JID, Device
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ClientName, Presence, ReceiptType

from connector.contracts import ControlCommand, OutboundCommand, now_ms, phone_digits
from connector.files import private_dir, private_files, replace_file
from connector.transport import (
    NotConnectedError,
    SendError,
    SendUncertainError,
    Transport,
    TransportError,
    TransportEvents,
)
from connector.wa_inbound import USER_SERVER, InboundMapper
from connector.wa_outbound import build_message, recipient, remember_poll, send_failure
from workbench.store.config import get_settings

log = logging.getLogger(__name__)
# neonize warns at every connect that without ffmpeg "voice notes, video, thumbnails will fail"; we never call
# its ffmpeg helpers (see connector.wa_outbound), so on a pip install that warning would only mislead.
logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)

SESSIONS_DIR = "sessions"
QR_FIRST_TTL_S = 60.0  # whatsmeow's first QR code lives 60 s ...
QR_NEXT_TTL_S = 20.0  # ... and each of the next five 20 s
QR_CODES = 6
QR_GRACE_S = 10.0  # how late a new code may be before the series counts as over
STALL_S = 60.0  # a connected client whose socket stays down this long with no events is restarted
PAIR_CODE_TTL_S = 180.0
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
RETIRE_WAIT_S = 30.0  # how long stopping a client waits for sends in progress

ClientFactory = Callable[..., Any]


def default_client_factory(name: str, jid: JID | None = None, uuid: str | None = None) -> Any:
    """A real neonize client: ``name`` is the SQLite session file, ``jid`` the device to resume."""
    from neonize.client import NewClient

    return NewClient(name, jid=jid, uuid=uuid)


def _enum_name(message_class: Any, field: str, value: int) -> str:
    """The lower-case name of an enum field's value (its number when this neonize build does not know it)."""
    known = message_class.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(value)
    return known.name.lower() if known is not None else str(value)


class NeonizeTransport(Transport):
    """One WhatsApp number through neonize (see the module docstring).

    Args:
        instance_id / events / redis_client / data_dir: see ``Transport``.
        client_factory: builds the client as ``factory(name, jid=..., uuid=...)``; tests pass a fake.
        qr_ttl_s: lifetime of every QR code (whatsmeow's 60 s / 20 s by default); for tests.
        qr_grace_s: how late a new QR code may be before the series counts as expired.
        backoff_base_s / backoff_max_s: retry delays after ``connect()`` fails (doubling).
        accept_groups: accept group messages and reply in groups; default the settings' ``wa_accept_groups``.
    """

    def __init__(self, instance_id: int, events: TransportEvents, *, redis_client: Any, data_dir: Path,
                 client_factory: ClientFactory | None = None, qr_ttl_s: float | None = None,
                 qr_grace_s: float = QR_GRACE_S, backoff_base_s: float = BACKOFF_BASE_S,
                 backoff_max_s: float = BACKOFF_MAX_S, accept_groups: bool | None = None) -> None:
        super().__init__(instance_id, events, redis_client=redis_client, data_dir=data_dir)
        self.client_factory = client_factory or default_client_factory
        self.qr_first_ttl_s = qr_ttl_s or QR_FIRST_TTL_S
        self.qr_next_ttl_s = qr_ttl_s or QR_NEXT_TTL_S
        self.qr_grace_s = qr_grace_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.accept_groups = get_settings().wa_accept_groups if accept_groups is None else accept_groups
        self.inbound = InboundMapper(instance_id, redis_client=redis_client, data_dir=self.data_dir,
                                     accept_groups=self.accept_groups)
        self.uuid = f"wb-{instance_id}"
        sessions = self.data_dir / SESSIONS_DIR
        self.session_path = sessions / f"{instance_id}.sqlite3"
        self.jid_path = sessions / f"{instance_id}.jid.json"

        self._stop = threading.Event()
        self._wake = threading.Event()  # interrupts the connection loop's waits (a control, stop)
        self._actions: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        # Guards everything below; notified when a borrowed client is given back.
        self._cond = threading.Condition(threading.RLock())
        self._client: Any = None  # the client whose connect() runs; None between clients
        self._in_use = 0  # sends etc. holding ``_client`` right now
        self._connected = False
        self._own: JID | None = None  # our own JID while connected
        self._push_name: str | None = None
        self._idle: tuple[str, str] | None = None  # (state, reason): wait for the panel before connecting again
        self._failures = 0
        # Pairing round of the current client.
        self._qr_count = 0
        self._qr_first_at = 0.0
        self._qr_deadline: float | None = None  # monotonic time by which the next QR code must come
        self._paired = False
        self._pair_phone: str | None = None  # asked for before connect() ran: requested after the first QR
        self._pair_code_shown = False
        self._down_since: float | None = None  # when the connected client's socket was first seen down

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the connection and action threads (returns at once)."""
        # The session holds the device's keys: a private directory, and files narrowed that an older run (or the
        # Go SQLite driver, under a wider umask) created readable by others.
        private_dir(self.session_path.parent)
        private_files(*self._session_files())
        for target, name in ((self._run, "conn"), (self._run_actions, "actions")):
            thread = threading.Thread(target=target, name=f"neonize-{name}-{self.instance_id}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Disconnect, keeping the session for the next start, and join the threads."""
        self._stop.set()
        self._wake.set()
        with self._cond:
            client = self._client
        if client is not None:
            self._retire(client)
        for thread in self._threads:
            thread.join(timeout=10)

    def alive(self) -> bool:
        """False when we believe we are connected but the client's socket has been down for a while.

        whatsmeow reconnects on its own and reports it (DisconnectedEv, then ConnectedEv); a socket that is
        down with no such events for ``STALL_S`` means the client is stuck, and only a restart helps.
        """
        with self._cond:
            client, connected = self._client, self._connected
        if client is None or not connected:
            self._down_since = None
            return True
        if client.is_connected:
            self._down_since = None
            return True
        now = time.monotonic()
        self._down_since = self._down_since or now
        return now - self._down_since < STALL_S

    def control(self, command: ControlCommand) -> None:
        """Queue a panel request for the action thread."""
        self._actions.put((self._apply_control, (command,)))

    # -- the connection loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                idle = self._idle
            if idle is not None:
                self._wait(None)
                continue
            try:
                client = self._open_client()
            except Exception:  # noqa: BLE001 - a broken install or session file: let the supervisor restart us
                log.exception("instance %s: could not create the neonize client", self.instance_id)
                self._report("failed", "client_error")
                return
            try:
                client.connect()  # blocks until the client is stopped
            except NeonizeError as exc:
                log.warning("instance %s: connect failed: %s", self.instance_id, exc)
            except Exception:  # noqa: BLE001 - reported, and the relay exits so the supervisor restarts us
                log.exception("instance %s: neonize client crashed", self.instance_id)
                self._retire(client)
                self._report("failed", "transport_error")
                return
            with self._cond:
                ours = self._client is client  # still current: it ended by itself, not because we stopped it
            if not ours or self._stop.is_set():
                continue
            # Connect failed, or the Go loop ended on its own: clean up and try again after a pause.
            self._retire(client)
            with self._cond:
                self._failures += 1
                delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (self._failures - 1))
            self._report("reconnecting", "connect_error")
            self._wait(delay)

    def _wait(self, timeout: float | None) -> None:
        """Sleep until ``timeout``, a control that needs the loop, or stop."""
        self._wake.wait(timeout)
        self._wake.clear()

    def _open_client(self) -> Any:
        """A new client with every handler registered (neonize subscribes at connect(), so first)."""
        jid = self._stored_jid()
        client = self.client_factory(str(self.session_path), jid=jid, uuid=self.uuid)
        handlers: dict[type, Callable[[Any, Any], None]] = {
            ConnectedEv: self._on_connected,
            DisconnectedEv: self._on_disconnected,
            KeepAliveTimeoutEv: self._on_keepalive_timeout,
            KeepAliveRestoredEv: self._on_keepalive_restored,
            LoggedOutEv: self._on_logged_out,
            StreamReplacedEv: self._on_stream_replaced,
            TemporaryBanEv: self._on_temporary_ban,
            ConnectFailureEv: self._on_connect_failure,
            ClientOutdatedEv: self._on_client_outdated,
            PairStatusEv: self._on_pair_status,
            MessageEv: self._on_message,
            ReceiptEv: self._on_receipt,
        }
        for event_class, handler in handlers.items():
            # A plain function, not a bound method: neonize keeps bound methods only as weak references.
            client.event(event_class)(self._guarded(handler))
        client.event.qr(self._guarded(self._on_qr))
        with self._cond:
            self._client = client
            self._connected = False
            self._qr_count = 0
            self._qr_deadline = None
            self._paired = False
            self._pair_code_shown = False
            retrying = self._failures > 0
        if not retrying:  # while retrying, "reconnecting" stays the state rather than flapping with each try
            self._report("connecting", "resuming" if jid is not None else "new_session")
        return client

    def _guarded(self, handler: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        """Run ``handler`` for events of the current client only; an exception must not reach the Go side."""
        def callback(client: Any, event: Any) -> None:
            with self._cond:
                if client is not self._client:
                    return  # a stopped client's late event
            try:
                handler(client, event)
            except Exception:  # noqa: BLE001 - raising into neonize's callback would kill its event loop
                log.exception("instance %s: handling %s failed", self.instance_id, type(event).__name__)
        return callback

    def _retire(self, client: Any) -> None:
        """Stop ``client`` once no send holds it, and make sure nothing calls it again."""
        with self._cond:
            if self._client is client:
                self._client = None
                self._connected = False
                self._qr_deadline = None
                deadline = time.monotonic() + RETIRE_WAIT_S
                while self._in_use and time.monotonic() < deadline:
                    self._cond.wait(0.5)
        try:
            client.stop()
        except Exception as exc:  # noqa: BLE001 - it may have stopped by itself
            log.debug("instance %s: stopping the client: %s", self.instance_id, exc)
        # neonize's finalizer calls Go's Stop(uuid) when the object is collected; the next client has the
        # same uuid, so a late finalizer would stop it. We stopped this one ourselves.
        finalizer = getattr(client, "_stop_finalizer", None)
        if finalizer is not None:
            finalizer.detach()

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        """The connected client, held so that it is not stopped under a call in progress."""
        with self._cond:
            client = self._client
            if client is None or not self._connected:
                raise NotConnectedError(f"instance {self.instance_id} is not connected")
            self._in_use += 1
        try:
            yield client
        finally:
            with self._cond:
                self._in_use -= 1
                self._cond.notify_all()

    def _report(self, state: str, reason: str | None = None, phone: str | None = None,
                push_name: str | None = None) -> None:
        try:
            self.events.on_state(state, reason, phone=phone, push_name=push_name)
        except Exception as exc:  # noqa: BLE001 - a state the relay cannot record is not worth a dead thread
            log.warning("instance %s: state %s not reported (%s)", self.instance_id, state, exc)

    # -- the session store -----------------------------------------------------------------------------------

    def _stored_jid(self) -> JID | None:
        """The paired device's JID, when both it and the session file exist."""
        if not self.session_path.exists():
            self.jid_path.unlink(missing_ok=True)
            return None
        try:
            data = json.loads(self.jid_path.read_text())
            return JID(User=data["user"], Server=data.get("server") or USER_SERVER, Device=int(data.get("device", 0)),
                       RawAgent=0, Integrator=0, IsEmpty=False)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # whatsmeow then resumes the only device of this instance's own file

    def _store_jid(self, jid: JID) -> None:
        replace_file(self.jid_path, json.dumps({"user": jid.User, "server": jid.Server, "device": jid.Device}))

    def _session_files(self) -> tuple[Path, ...]:
        """The session database with its SQLite companions, and the JID file."""
        return (self.session_path, *(Path(f"{self.session_path}{s}") for s in ("-journal", "-wal", "-shm")),
                self.jid_path)

    def _forget_session(self) -> None:
        """Delete the session (the client must be stopped): the next start pairs a new device."""
        for path in self._session_files():
            path.unlink(missing_ok=True)

    # -- actions ---------------------------------------------------------------------------------------------

    def _run_actions(self) -> None:
        while not self._stop.is_set():
            try:
                action, args = self._actions.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                try:
                    action(*args)
                except Exception:  # noqa: BLE001 - one failed action must not end the thread
                    log.exception("instance %s: action %s failed", self.instance_id, action.__name__)
            self._check_qr_series()

    def _apply_control(self, command: ControlCommand) -> None:
        log.info("instance %s: control %s", self.instance_id, command.action)
        with self._cond:
            client, connected, idle = self._client, self._connected, self._idle
        if command.action == "logout":
            self._logout(client)
        elif command.action == "reconnect":
            if idle is None and client is not None:
                self._report("reconnecting", "requested")
                self._retire(client)
            self._resume()
        elif command.action == "restart_pairing":
            if connected:
                log.info("instance %s: already paired; restart_pairing ignored", self.instance_id)
                return
            with self._cond:
                self._pair_phone = None
            if client is not None:
                self._retire(client)
            self._resume()
        elif command.action == "pair_phone":
            self._request_pair_code(command.phone, client, connected, idle)

    def _resume(self) -> None:
        """Leave an idle state: the connection loop opens a new client."""
        with self._cond:
            self._idle = None
        self._wake.set()

    def _idle_in(self, client: Any, state: str, reason: str) -> None:
        """Stop ``client`` and wait in ``state`` until the panel asks for a reconnect or a new pairing."""
        with self._cond:
            if self._client is not client:
                return
            self._idle = (state, reason)
        self._retire(client)
        self._report(state, reason)

    def _logout(self, client: Any) -> None:
        """Unlink the device on WhatsApp, delete the session, and show a new QR code."""
        with self._cond:
            # Idle first: the connection loop must not open the old session while it is being deleted.
            self._idle = ("logged_out", "logout")
            logged_in = self._connected
        if client is not None:
            if logged_in:
                try:
                    client.logout()
                except NeonizeError as exc:
                    # The session goes anyway: the panel asked for it. The phone may list a stale device.
                    log.warning("instance %s: logout request failed (%s); deleting the session", self.instance_id,
                                exc)
            self._retire(client)
        self._forget_session()
        with self._cond:
            self._pair_phone = None
        self._report("logged_out", "logout")
        self._resume()

    def _request_pair_code(self, phone: str | None, client: Any, connected: bool,
                           idle: tuple[str, str] | None) -> None:
        if connected:
            log.info("instance %s: already paired; pair_phone ignored", self.instance_id)
            return
        digits = phone_digits(phone)
        if len(digits) < 8:
            self._report("awaiting_qr", "pair_phone_invalid")
            return
        with self._cond:
            self._pair_phone = digits
            ready = client is not None and self._qr_count > 0
        if idle is not None or client is None:
            self._resume()  # a new client; the code is requested after its first QR callback
        elif ready:
            self._pair_now(client)
        # else: connect() has not shown its first QR code yet; _on_qr asks for the code then.

    def _pair_now(self, client: Any) -> None:
        """Ask WhatsApp for a phone pairing code (connect() is running: a QR code was shown)."""
        with self._cond:
            phone, self._pair_phone = self._pair_phone, None
            if phone is None or self._client is not client:
                return
        try:
            code = client.PairPhone(phone, True, ClientName.LINUX)
        except NeonizeError as exc:
            log.warning("instance %s: pairing code refused: %s", self.instance_id, exc)
            self._report("awaiting_qr", "pair_phone_failed")
            return
        with self._cond:
            if self._client is not client:
                return
            self._pair_code_shown = True
            series_end = self._qr_first_at + self.qr_first_ttl_s + (QR_CODES - 1) * self.qr_next_ttl_s
            # The code dies with the QR series (whatsmeow disconnects when it ends).
            ttl_s = max(0.0, min(PAIR_CODE_TTL_S, series_end - time.monotonic()))
        self._report("pairing", "pair_code")
        self.events.on_pair_code(code, now_ms() + int(ttl_s * 1000))

    def _check_qr_series(self) -> None:
        """whatsmeow stops sending QR codes without a word: notice it and stop the dead client."""
        with self._cond:
            client, deadline = self._client, self._qr_deadline
            expired = client is not None and deadline is not None and not self._paired and time.monotonic() > deadline
        if expired:
            log.info("instance %s: QR codes expired without a scan", self.instance_id)
            self._idle_in(client, "awaiting_qr", "qr_expired")

    def _send_presence(self, client: Any) -> None:
        """Show the number as online once connected (WhatsApp delivers receipts and typing more reliably)."""
        with self._cond:
            if self._client is not client or not self._connected:
                return
        try:
            with self._borrow() as borrowed:
                borrowed.send_presence(Presence.AVAILABLE)
        except (NeonizeError, NotConnectedError) as exc:
            log.info("instance %s: presence not sent (%s)", self.instance_id, exc)

    # -- neonize events: connection --------------------------------------------------------------------------

    def _on_qr(self, client: Any, data: bytes) -> None:
        code = data.decode() if isinstance(data, bytes) else str(data)
        with self._cond:
            self._qr_count += 1
            first = self._qr_count == 1
            if first:
                self._qr_first_at = time.monotonic()
            ttl_s = self.qr_first_ttl_s if first else self.qr_next_ttl_s
            self._qr_deadline = time.monotonic() + ttl_s + self.qr_grace_s
            pending_phone = self._pair_phone is not None
            showing_code = self._pair_code_shown
        if first and pending_phone:
            self._actions.put((self._pair_now, (client,)))
        if showing_code or pending_phone:
            return  # the panel shows the pairing code; a QR code next to it would only confuse
        self._report("awaiting_qr")
        self.events.on_qr(code, now_ms() + int(ttl_s * 1000))

    def _on_pair_status(self, client: Any, event: PairStatusEv) -> None:
        if event.Status == PairStatusEv.SUCCESS:
            with self._cond:
                self._paired = True
                self._qr_deadline = None
            self._report("connecting", "paired", phone=phone_digits(event.ID.User) or None,
                         push_name=event.BusinessName or None)
        else:
            log.warning("instance %s: pairing failed: %s", self.instance_id, event.Error)
            self._report("failed", "pair_error")

    def _on_connected(self, client: Any, event: ConnectedEv) -> None:
        me: Device | None = None
        try:
            me = client.get_me()
        except Exception as exc:  # noqa: BLE001 - the stored JID is a fine fallback
            log.warning("instance %s: own device unknown (%s)", self.instance_id, exc)
        own = me.JID if me is not None and me.JID.User else self._stored_jid()
        if own is not None and me is not None and me.JID.User:
            self._store_jid(own)
        with self._cond:
            self._connected = True
            self._paired = True
            self._qr_deadline = None
            self._failures = 0
            self._own = own
            if me is not None and me.PushName:
                self._push_name = me.PushName
        self._report("connected", None, phone=phone_digits(own.User) if own is not None else None,
                     push_name=self._push_name)
        self._actions.put((self._send_presence, (client,)))

    def _on_disconnected(self, client: Any, event: DisconnectedEv) -> None:
        with self._cond:
            was_connected, self._connected = self._connected, False
        if was_connected:
            self._report("reconnecting", "disconnected")  # whatsmeow reconnects by itself

    def _on_keepalive_timeout(self, client: Any, event: KeepAliveTimeoutEv) -> None:
        with self._cond:
            self._connected = False
        self._report("reconnecting", "keepalive_timeout")

    def _on_keepalive_restored(self, client: Any, event: KeepAliveRestoredEv) -> None:
        with self._cond:
            self._connected = True
            own, push_name = self._own, self._push_name
        self._report("connected", None, phone=phone_digits(own.User) if own is not None else None, push_name=push_name)

    def _on_logged_out(self, client: Any, event: LoggedOutEv) -> None:
        reason = _enum_name(LoggedOutEv, "Reason", event.Reason)
        log.warning("instance %s: logged out by WhatsApp (%s)", self.instance_id, reason)
        self._actions.put((self._after_logged_out, (client, reason)))

    def _after_logged_out(self, client: Any, reason: str) -> None:
        with self._cond:
            if self._client is not client:
                return
            self._idle = ("logged_out", reason)
        self._retire(client)
        self._forget_session()  # whatsmeow already deleted the device; the file would only resume nothing
        self._report("logged_out", reason)

    def _on_stream_replaced(self, client: Any, event: StreamReplacedEv) -> None:
        # Another client took the session (a second connector?). Fighting back would flap both: wait.
        self._actions.put((self._idle_in, (client, "replaced", "stream_replaced")))

    def _on_temporary_ban(self, client: Any, event: TemporaryBanEv) -> None:
        code = _enum_name(TemporaryBanEv, "Code", event.Code)
        until_ms = now_ms() + max(0, event.Expire) * 1000
        self._actions.put((self._idle_in, (client, "banned", f"temporary_ban:{code}:until={until_ms}")))

    def _on_connect_failure(self, client: Any, event: ConnectFailureEv) -> None:
        reason = _enum_name(ConnectFailureEv, "Reason", event.Reason)
        log.warning("instance %s: connect failure %s: %s", self.instance_id, reason, event.Message)
        self._report("failed", f"connect_failure:{reason}")

    def _on_client_outdated(self, client: Any, event: ClientOutdatedEv) -> None:
        # Retrying cannot help until neonize is upgraded.
        self._actions.put((self._idle_in, (client, "outdated", "client_outdated")))

    # -- neonize events: messages ----------------------------------------------------------------------------

    def _hand_over(self, deliver: Callable[[Any], None], event: Any) -> None:
        """Give an event to the relay, retrying while it cannot take it: blocking here holds whatsmeow back
        from acknowledging more messages, which is what we want while they cannot be kept."""
        delay = 0.5
        while True:
            try:
                deliver(event)
                return
            except Exception as exc:  # noqa: BLE001 - Redis and the spool both failing (disk full ...)
                log.error("instance %s: could not hand over %s (%s); retrying", self.instance_id,
                          type(event).__name__, exc)
            if self._stop.wait(delay):
                log.error("instance %s: stopping with an event not handed over", self.instance_id)
                return
            delay = min(delay * 2, 10.0)

    def _on_message(self, client: Any, event: MessageEv) -> None:
        with self._cond:
            own = self._own
        message = self.inbound.message(client, event, own)
        if message is not None:
            self._hand_over(self.events.on_message, message)

    def _on_receipt(self, client: Any, event: ReceiptEv) -> None:
        receipt = self.inbound.receipt(event)
        if receipt is not None:
            self._hand_over(self.events.on_receipt, receipt)

    # -- sending ---------------------------------------------------------------------------------------------

    def send(self, command: OutboundCommand) -> str:
        """Send one message; returns its WhatsApp id (see ``Transport.send`` for the errors)."""
        command = command.sendable_poll()
        to = recipient(command.to_phone, command.to_jid, accept_groups=self.accept_groups)
        with self._borrow() as client:
            try:
                message = build_message(client, command, to, self.data_dir)
            except TransportError:
                raise
            except Exception as exc:  # noqa: BLE001 - upload, image thumbnail, poll builder: nothing was sent
                raise SendError(f"outbox {command.outbox_id}: message not prepared: {exc}") from exc
            try:
                response = client.send_message(to, message)
            except NeonizeError as exc:  # SendMessageError and kin carry whatsmeow's error text
                raise send_failure(command, str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - we cannot tell whether it left
                raise SendUncertainError(f"outbox {command.outbox_id}: {type(exc).__name__}: {exc}") from exc
        wa_id = getattr(response, "ID", "")
        if not wa_id:
            raise SendUncertainError(f"outbox {command.outbox_id}: no message id in the send response")
        if command.type == "poll":
            remember_poll(self.redis, self.instance_id, wa_id, command.poll_options or [])
        return wa_id

    def set_typing(self, to_phone: str, on: bool) -> None:
        """Show or clear "typing..." in the contact's chat."""
        to = recipient(to_phone)
        state = ChatPresence.CHAT_PRESENCE_COMPOSING if on else ChatPresence.CHAT_PRESENCE_PAUSED
        with self._borrow() as client:
            try:
                client.send_chat_presence(to, state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
            except NeonizeError as exc:
                raise TransportError(f"typing indicator: {exc}") from exc

    def mark_read(self, chat_phone: str, wa_ids: list[str]) -> None:
        """Blue ticks on the contact's messages."""
        if not wa_ids:
            return
        chat = recipient(chat_phone)
        with self._borrow() as client:
            try:
                client.mark_read(*wa_ids, chat=chat, sender=chat, receipt=ReceiptType.READ)
            except NeonizeError as exc:
                raise TransportError(f"mark read: {exc}") from exc
