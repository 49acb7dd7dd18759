"""The transport seam: what the relay needs from a WhatsApp connection, whatever provides it.

A transport (the Redis sandbox, or real WhatsApp through neonize) owns the provider connection of one number.
It turns the provider's events into the neutral contracts and hands them to the relay through
``TransportEvents``; the relay owns Redis, the outbound stream, pacing and the at-most-once bookkeeping. Errors::

    TransportError            base
    ├── NotConnectedError     not connected right now; the relay waits and tries again (nothing was sent)
    ├── SendError             the provider refused the message; it was definitely not sent
    └── SendUncertainError    the outcome is unknown (e.g. a timeout after writing); never retried
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

import redis

from connector.contracts import ControlCommand, InboundMessage, OutboundCommand, Receipt


class TransportError(Exception):
    """Base of the errors a transport raises."""


class NotConnectedError(TransportError):
    """The transport is not connected; nothing was sent."""


class SendError(TransportError):
    """The message was refused and definitely not sent (bad recipient, missing media file, ...)."""


class SendUncertainError(TransportError):
    """The message may or may not have been sent; resending could duplicate it."""


class TransportEvents(Protocol):
    """Callbacks a transport makes to its relay. They may block briefly (a send completing) and may raise
    when Redis is unreachable; a transport then keeps the event and offers it again later."""

    def on_state(self, state: str, reason: str | None = None, phone: str | None = None,
                 push_name: str | None = None) -> None:
        """The connection changed state (one of ``contracts.STATES``; ``reason`` is a machine code)."""

    def on_qr(self, code: str, expires_at_ms: int) -> None:
        """A new QR code string to show; it stops being valid at ``expires_at_ms``."""

    def on_pair_code(self, code: str, expires_at_ms: int) -> None:
        """A phone pairing code to type on the phone (answer to ``ControlCommand(action="pair_phone")``)."""

    def on_message(self, message: InboundMessage) -> None:
        """An inbound message. When this returns, it is safely handed over and may be acknowledged upstream."""

    def on_receipt(self, receipt: Receipt) -> None:
        """Delivery or read receipts for messages this number sent."""

    def on_events(self, events: list[InboundMessage | Receipt]) -> None:
        """Several messages and receipts at once, in the order received (a transport that reads them in
        batches); when this returns, all of them are handed over."""


class Transport(ABC):
    """One number's connection to WhatsApp (or to the sandbox).

    Life cycle: ``start()`` returns at once and connects in the transport's own threads, reporting through
    ``events``; ``stop()`` disconnects (keeping the stored session) and joins those threads. ``send``,
    ``set_typing`` and ``mark_read`` are called from the relay's sender threads, possibly concurrently.
    """

    def __init__(self, instance_id: int, events: TransportEvents, *, redis_client: Any, data_dir: Path) -> None:
        self.instance_id = instance_id
        self.events = events
        self.redis = redis_client
        self.data_dir = Path(data_dir)

    @abstractmethod
    def start(self) -> None:
        """Begin connecting: resume the stored session, or show QR codes when there is none."""

    @abstractmethod
    def send(self, command: OutboundCommand) -> str:
        """Send one message and return its WhatsApp id.

        Raises:
            NotConnectedError: not connected; nothing was sent.
            SendError: refused; nothing was sent.
            SendUncertainError: it may have been sent.
        """

    def send_many(self, commands: list[OutboundCommand]) -> list[str | TransportError]:
        """Send several messages in order: one result per command tried, its WhatsApp id or the ``SendError`` /
        ``SendUncertainError`` it met. A ``NotConnectedError`` ends the batch: the commands from there on were not
        tried, and the list is that much shorter. One by one here; a transport that can send a batch at once
        overrides it."""
        results: list[str | TransportError] = []
        for command in commands:
            try:
                results.append(self.send(command))
            except NotConnectedError:
                break
            except (SendError, SendUncertainError) as exc:
                results.append(exc)
        return results

    @abstractmethod
    def set_typing(self, to_phone: str, on: bool) -> None:
        """Show (or clear) the "typing..." indicator in the contact's chat."""

    @abstractmethod
    def mark_read(self, chat_phone: str, wa_ids: list[str]) -> None:
        """Mark the contact's messages as read (blue ticks on their phone)."""

    def mark_read_many(self, reads: dict[str, list[str]]) -> dict[str, Exception]:
        """``mark_read`` in several chats (phone -> message ids); returns the error of each chat whose receipt did
        not go out (``TransportError`` or a Redis error). Chat by chat here; a transport that can send them at
        once overrides it."""
        failed: dict[str, Exception] = {}
        for phone, wa_ids in reads.items():
            try:
                self.mark_read(phone, wa_ids)
            except (TransportError, redis.RedisError) as exc:
                failed[phone] = exc
        return failed

    @abstractmethod
    def control(self, command: ControlCommand) -> None:
        """Act on a panel request: reconnect, logout, pair_phone or restart_pairing. Returns at once."""

    @abstractmethod
    def stop(self) -> None:
        """Disconnect and release the connection; the stored session is kept for the next start."""

    def alive(self) -> bool:
        """Whether the connection is working as far as the transport can tell (probed with each heartbeat).

        False makes the relay withhold its heartbeat, so the supervisor restarts the connector. A probe
        that hangs (a stuck native library) stops the heartbeat too, with the same effect.
        """
        return True


# Transport name (as in ``wb:instances`` and ``--transport``) -> "module:Class". Import on demand, so a
# sandbox connector never loads the neonize binary.
TRANSPORTS = {
    "neonize": "connector.neonize_transport:NeonizeTransport",
    "sandbox": "connector.sandbox:SandboxTransport",
}


def load_transport(name: str) -> type[Transport]:
    """The transport class registered under ``name``.

    Raises:
        ValueError: no transport of that name.
    """
    try:
        target = TRANSPORTS[name]
    except KeyError:
        raise ValueError(f"unknown transport {name!r}; known: {', '.join(sorted(TRANSPORTS))}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
