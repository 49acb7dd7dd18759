"""Helpers shared by the connector, sandbox and supervisor tests (this module holds no tests).

Nothing here sleeps for a fixed time to assert on: ``wait_until`` polls a condition with a generous deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis as redis_lib

from connector import contracts
from connector.relay import Relay
from connector.sandbox import SandboxNetwork

ROOT = Path(__file__).resolve().parent.parent
BUSINESS = "5511990000001"
LEAD = "5511980000001"
DEADLINE_S = 30.0

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = DEADLINE_S, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch, this_thread_only: bool = False) -> Iterator[list[bytes]]:
    """Record what every redis-py connection writes to its server while the block runs: one item (the bytes sent) per
    round trip (a pipeline is one write). The connections stay real; only the record is added. With
    `this_thread_only`, the writes of other threads (a transport's reader running meanwhile) are left out."""
    writes: list[bytes] = []
    real_send = redis_lib.connection.AbstractConnection.send_packed_command
    caller = threading.get_ident()

    def counted(connection: Any, command: Any, check_health: bool = True) -> None:
        if not this_thread_only or threading.get_ident() == caller:
            writes.append(command if isinstance(command, bytes) else b"".join(
                part if isinstance(part, bytes) else str(part).encode() for part in command))
        real_send(connection, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis_lib.connection.AbstractConnection, "send_packed_command", counted)
        yield writes


def status(r: Any, instance_id: int) -> dict[str, str]:
    """The instance's status hash, decoded."""
    return {k.decode(): v.decode() for k, v in r.hgetall(contracts.STATUS_HASH.format(instance_id)).items()}


def inbound_entries(r: Any, instance_id: int) -> list[tuple[bytes, dict]]:
    """Every entry of the number's inbound streams (all lanes), in the order Redis took them (by entry id)."""
    keys = r.scan_iter(match=contracts.IN_STREAM.format(f"{instance_id}:*"))
    entries = [entry for key in keys for entry in r.xrange(key)]
    return sorted(entries, key=lambda e: tuple(int(part) for part in e[0].split(b"-")))


def clear_inbound(r: Any, instance_id: int) -> None:
    """Forget every inbound stream of the number (between two phases of a test)."""
    for key in list(r.scan_iter(match=contracts.IN_STREAM.format(f"{instance_id}:*"))):
        r.delete(key)


def events(r: Any, instance_id: int, kind: str | None = None) -> list[Any]:
    """Everything the connector published to the number's inbound lanes, in order (optionally one kind only)."""
    decoded = [contracts.decode_inbound(f) for _, f in inbound_entries(r, instance_id)]
    return [e for e in decoded if kind is None or e.kind == kind]


def send_command(r: Any, instance_id: int, outbox_id: int, text: str, to_phone: str = LEAD, **fields: Any) -> None:
    """Publish an OutboundCommand as the workers do."""
    command = contracts.OutboundCommand(outbox_id=outbox_id, instance_id=instance_id, to_phone=to_phone, text=text,
                                        **fields)
    r.xadd(contracts.OUT_STREAM.format(instance_id), contracts.encode(command))


def acks(r: Any, instance_id: int) -> dict[int, list[Any]]:
    """SendAcks by outbox id."""
    by_id: dict[int, list[Any]] = {}
    for ack in events(r, instance_id, "ack"):
        by_id.setdefault(ack.outbox_id, []).append(ack)
    return by_id


def wait_state(r: Any, instance_id: int, state: str, timeout: float = DEADLINE_S) -> dict[str, str]:
    """Wait until the status hash shows ``state``; returns the hash."""
    return wait_until(lambda: (s := status(r, instance_id)).get("state") == state and s, timeout,
                      f"instance {instance_id} to be {state}")


def wait_qr(r: Any, instance_id: int) -> dict[str, str]:
    """Wait until the instance shows a QR code (state first, then code: there is a moment without one)."""
    return wait_until(lambda: (s := status(r, instance_id)).get("state") == "awaiting_qr" and "qr" in s and s,
                      what=f"instance {instance_id} to show a QR code")


def pair(r: Any, network: SandboxNetwork, instance_id: int, phone: str = BUSINESS, push_name: str = "Loja") -> None:
    """Scan the instance's current QR code with ``phone`` and wait until it is connected."""
    code = wait_qr(r, instance_id)["qr"]
    assert network.scan(code, phone, push_name)
    assert wait_state(r, instance_id, "connected")["phone"] == phone


@contextmanager
def relay_thread(r: Any, instance_id: int, transport: Any = "sandbox", **options: Any) -> Iterator[Relay]:
    """A relay running in a thread of the test process; stopped and joined on exit.

    ``relay.exit_code`` holds ``{"code": n}`` once ``run()`` returned (for relays that stop themselves).
    """
    options.setdefault("typing_ms_per_char", 0)
    options.setdefault("heartbeat_s", 0.2)
    relay = Relay(r, instance_id, transport, **options)
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", relay.run()), name=f"relay-{instance_id}",
                              daemon=True)
    thread.start()
    assert relay.wait_ready(DEADLINE_S)
    relay.exit_code = result
    try:
        yield relay
    finally:
        relay.stop()
        thread.join(DEADLINE_S)
        assert not thread.is_alive(), "relay did not stop"


class Processes:
    """Child processes started by a test; whatever is still running at teardown is killed."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """``python -m connector <args>`` from the project root, with the test environment plus ``env``."""
        proc = subprocess.Popen([sys.executable, "-m", "connector", *args], cwd=ROOT,
                                env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
        self.started.append(proc)
        return proc

    def connector(self, instance_id: int, typing_ms_per_char: int = 0) -> subprocess.Popen:
        """A connector process for a sandbox instance."""
        return self.start("run", "--instance", str(instance_id), "--transport", "sandbox", "--heartbeat", "0.2",
                          env={"WORKBENCH_TYPING_MS_PER_CHAR": str(typing_ms_per_char)})

    def kill_all(self) -> None:
        """SIGKILL and reap every process still running."""
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(DEADLINE_S)
