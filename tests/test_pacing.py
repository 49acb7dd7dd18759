"""Pacing per number: a minimum gap between sends and a ceiling per minute (fake clock, and a real relay)."""

from __future__ import annotations

import threading
import time

import pytest

from connector.claims import read_claims
from connector.pacing import Pacer
from connector.relay import Relay, _Lanes
from connector.sandbox import SandboxNetwork
from tests.test_connector_support import LEAD, acks, pair, relay_thread, send_command, wait_until
from workbench.store.config import get_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_minimum_gap_between_sends():
    clock = Clock()
    pacer = Pacer(min_gap_s=2.0, per_minute=0, clock=clock)
    assert pacer.delay() == 0
    pacer.record()
    assert pacer.delay() == pytest.approx(2.0)
    clock.now += 1.5
    assert pacer.delay() == pytest.approx(0.5)
    clock.now += 0.5
    assert pacer.delay() == 0


def test_ceiling_per_minute_counts_a_sliding_minute():
    clock = Clock()
    pacer = Pacer(min_gap_s=0, per_minute=3, clock=clock)
    for _ in range(3):
        assert pacer.delay() == 0
        pacer.record()
        clock.now += 10
    assert pacer.delay() == pytest.approx(30)  # the first of the three left the minute 30 s from now
    clock.now += 30
    assert pacer.delay() == 0


def test_wait_gives_up_when_stopping():
    clock = Clock()
    pacer = Pacer(min_gap_s=3600, per_minute=0, clock=clock)
    pacer.record()
    stop = threading.Event()
    stop.set()
    assert pacer.wait(stop) is False


def test_the_relay_paces_and_types_as_the_settings_say(r, settings_env, tmp_path):
    settings_env(WORKBENCH_SEND_MIN_GAP_MS="1500", WORKBENCH_SENDS_PER_MINUTE="20",
                 WORKBENCH_TYPING_MS_PER_CHAR="25", WORKBENCH_TYPING_MAX_MS="3000", WORKBENCH_DATA_DIR=str(tmp_path))
    relay = Relay(r, 1)
    assert (relay.pacer.min_gap_s, relay.pacer.per_minute) == (1.5, 20)
    assert (relay.typing_ms_per_char, relay.typing_max_ms, relay.data_dir) == (25, 3000, tmp_path)
    settings_env(WORKBENCH_SEND_MIN_GAP_MS="-5", WORKBENCH_SENDS_PER_MINUTE="0")
    relay = Relay(r, 1, typing_ms_per_char=0, data_dir=tmp_path / "other")
    assert (relay.pacer.min_gap_s, relay.pacer.per_minute) == (0.0, 0), "no gap, no ceiling"
    assert (relay.typing_ms_per_char, relay.data_dir) == (0, tmp_path / "other"), "arguments win"


def test_relay_holds_sends_past_the_ceiling_and_keeps_them(r, settings_env):
    settings_env(WORKBENCH_SENDS_PER_MINUTE="2")
    network = SandboxNetwork(r)
    with relay_thread(r, 1) as relay:
        pair(r, network, 1)
        for outbox_id in (1, 2, 3):
            send_command(r, 1, outbox_id, f"mensagem {outbox_id}", to_phone=f"{LEAD}{outbox_id}")
        wait_until(lambda: len(acks(r, 1)) == 2, what="two sends within the ceiling")
        assert relay.pacer.delay() > 30  # the third waits for the minute to pass
        # three contacts, three lanes: any one of the three may be the one left waiting
        [held] = {1, 2, 3} - set(acks(r, 1))
    assert held not in acks(r, 1)
    # stopped while waiting: the third was not sent and its claim was given back for the next start
    assert held not in read_claims(get_settings().data_dir, 1)


def test_relay_withholds_its_heartbeat_while_the_transport_reports_no_life(r, monkeypatch):
    network = SandboxNetwork(r)
    with relay_thread(r, 1) as relay:
        pair(r, network, 1)
        first = int(wait_until(lambda: r.hget("wb:conn:1", "heartbeat")))
        wait_until(lambda: int(r.hget("wb:conn:1", "heartbeat")) > first, what="a fresh heartbeat")
        monkeypatch.setattr(relay.transport, "alive", lambda: False)
        time.sleep(0.6)  # let a beat already past its check finish writing
        last = int(r.hget("wb:conn:1", "heartbeat"))
        relay._beat()  # the supervisor's liveness check then sees the heartbeat age and restarts the connector
        assert int(r.hget("wb:conn:1", "heartbeat")) == last


def test_neonize_transport_is_not_alive_when_its_socket_stays_down(tmp_path, monkeypatch):
    import connector.neonize_transport as nt

    class Socket:
        is_connected = True

    transport = nt.NeonizeTransport(1, events=None, redis_client=None, data_dir=tmp_path)
    transport._client, transport._connected = Socket(), True
    assert transport.alive()
    Socket.is_connected = False
    clock = [100.0]
    monkeypatch.setattr(nt.time, "monotonic", lambda: clock[0])
    assert transport.alive()  # down for a moment: whatsmeow reconnects by itself
    clock[0] += nt.STALL_S + 1
    assert not transport.alive()
    Socket.is_connected = True
    assert transport.alive()


def test_a_backlog_for_many_contacts_uses_a_bounded_number_of_threads_and_keeps_each_contacts_order():
    """A few threads serve thousands of contacts; one contact's items are handled in order, never two at once."""
    handled: dict[str, list[int]] = {}
    busy: set[str] = set()
    overlaps = []
    lock = threading.Lock()

    def handle(item: tuple[str, int]) -> None:
        key, n = item
        with lock:
            if key in busy:
                overlaps.append(key)
            busy.add(key)
        time.sleep(0.0005)
        with lock:
            busy.discard(key)
            handled.setdefault(key, []).append(n)

    lanes = _Lanes(handle, idle_s=5, max_threads=4)
    peak = 0
    for n in range(5):
        for k in range(400):
            lanes.dispatch(f"55119{k:08d}", (f"55119{k:08d}", n))
            peak = max(peak, lanes.thread_count)
    deadline = time.monotonic() + 60
    while sum(map(len, handled.values())) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    lanes.close(5)
    assert peak <= 4 and overlaps == []
    assert len(handled) == 400 and all(items == [0, 1, 2, 3, 4] for items in handled.values())
