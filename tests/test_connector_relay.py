"""The connector as a real process: at-most-once sending across kills, clean shutdown, the command line."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from connector import contracts
from connector.claims import Claims, read_claims
from connector.relay import INTERRUPTED
from connector.sandbox import SandboxNetwork
from tests.test_connector_support import (
    BUSINESS,
    DEADLINE_S,
    LEAD,
    ROOT,
    Processes,
    acks,
    events,
    pair,
    send_command,
    status,
    wait_state,
    wait_until,
)
from workbench.store.config import get_settings


@pytest.fixture
def network(r) -> SandboxNetwork:
    """The simulated phone network on the flushed test Redis."""
    return SandboxNetwork(r)


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start child processes; none survives the test."""
    procs = Processes()
    yield procs
    procs.kill_all()


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(DEADLINE_S)


def _business_messages(network: SandboxNetwork) -> list[str]:
    return [m["text"] for m in network.lead_chat(LEAD, BUSINESS) if m["direction"] == "from_business"]


def test_a_sent_command_republished_after_a_kill_is_not_sent_again(r, network, processes):
    first = processes.connector(1)
    pair(r, network, 1)
    send_command(r, 1, 1, "uma vez só")
    [ack] = wait_until(lambda: acks(r, 1).get(1), what="the ack")
    _kill(first)
    # The workers re-publish an outbox row whose ack they did not store yet: the same command again.
    send_command(r, 1, 1, "uma vez só")
    processes.connector(1)
    wait_until(lambda: len(acks(r, 1).get(1, [])) == 2, what="the second ack")
    again = acks(r, 1)[1][1]
    assert (again.ok, again.wa_id) == (True, ack.wa_id)
    assert _business_messages(network) == ["uma vez só"]


def test_commands_waiting_their_turn_when_the_connector_is_killed_are_sent_by_the_next_start(r, network, processes):
    """Killed while typing (or waiting for the pace), nothing was claimed: the next start sends both, once."""
    first = processes.connector(1, typing_ms_per_char=1000)  # typing lasts the default maximum, 4 s
    pair(r, network, 1)
    send_command(r, 1, 1, "interrompida")
    send_command(r, 1, 2, "na fila")  # same contact: waits behind the first
    wait_until(lambda: network.is_typing(LEAD, BUSINESS), what="the typing indicator of the first command")
    assert 1 not in read_claims(get_settings().data_dir, 1), "claimed only right before the send"
    _kill(first)

    processes.connector(1)
    wait_until(lambda: len(acks(r, 1)) == 2, what="both acks")
    assert all(ack[0].ok for ack in acks(r, 1).values())
    assert _business_messages(network) == ["interrompida", "na fila"]
    wait_until(lambda: r.xpending(contracts.OUT_STREAM.format(1), contracts.OUT_GROUP)["pending"] == 0,
               what="no pending entry")


def test_a_command_cut_off_between_claim_and_send_is_failed_and_the_queue_behind_it_is_sent(r, network, processes):
    """A "sending" claim left by a crash means the message may be out: failed, never sent twice."""
    Claims(r, 1, get_settings().data_dir).claim(1)  # what a connector killed inside the send leaves
    processes.connector(1)
    pair(r, network, 1)
    send_command(r, 1, 1, "interrompida")
    send_command(r, 1, 2, "na fila")
    wait_until(lambda: len(acks(r, 1)) == 2, what="both acks")
    by_id = acks(r, 1)
    assert (by_id[1][0].ok, by_id[1][0].error) == (False, INTERRUPTED)
    assert by_id[2][0].ok
    assert _business_messages(network) == ["na fila"]
    # each entry is acknowledged to the stream right after its SendAck is published
    wait_until(lambda: r.xpending(contracts.OUT_STREAM.format(1), contracts.OUT_GROUP)["pending"] == 0,
               what="no pending entry")


def test_sigterm_stops_cleanly_and_leaves_unsent_commands_for_the_next_start(r, network, processes):
    proc = processes.connector(1, typing_ms_per_char=1000)
    pair(r, network, 1)
    send_command(r, 1, 1, "mais tarde")
    wait_until(lambda: network.is_typing(LEAD, BUSINESS), what="the typing indicator")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE_S) == 0
    assert status(r, 1)["state"] == "stopped"
    assert events(r, 1, "state")[-1].reason == "shutdown"
    assert 1 not in read_claims(get_settings().data_dir, 1), "nothing went out, so the claim was given back"
    assert not network.is_typing(LEAD, BUSINESS)
    assert acks(r, 1) == {}

    processes.connector(1)
    wait_state(r, 1, "connected")
    [ack] = wait_until(lambda: acks(r, 1).get(1), what="the ack after the restart")
    assert ack.ok
    assert _business_messages(network) == ["mais tarde"]


def test_the_status_hash_carries_pid_and_heartbeat(r, processes):
    proc = processes.connector(3)
    first = int(wait_until(lambda: status(r, 3).get("heartbeat"), what="a heartbeat"))
    assert int(status(r, 3)["pid"]) == proc.pid
    wait_until(lambda: int(status(r, 3)["heartbeat"]) > first, what="a newer heartbeat")


def test_the_command_line_refuses_an_unknown_transport():
    done = subprocess.run([sys.executable, "-m", "connector", "run", "--instance", "1", "--transport", "carrier"],
                          cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
