"""The first user journey end to end, with real processes: `up` (workers + connector supervisor) and a
sandbox connector. A lead writes, the agent sees it in the inbox and answers, the lead receives the
answer with the typing indicator first, receipts come back, and a reply sent while the number's
connector is stopped is delivered exactly once when it returns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from connector.sandbox import SandboxNetwork
from tests.factories import make_actor, make_workspace
from workbench.services import conversations, instances

ROOT = Path(__file__).resolve().parent.parent
BUSINESS = "5511900000001"
LEAD = "5521988887777"


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def product(servers, engine, r, tmp_path):
    env = dict(os.environ)
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "up", "--only", "workers", "--only", "connectors"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    descendants = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    gone, alive = psutil.wait_procs(descendants, timeout=20)
    assert alive == [], f"orphans left: {[p.cmdline() for p in alive]}"


def _status(instance_id: int) -> dict:
    return instances.live_status(instance_id)


def test_lead_writes_agent_answers_lead_receives(product, r):
    ws = make_workspace()
    admin = make_actor(ws, "admin")
    agent = make_actor(ws, "agent")
    network = SandboxNetwork(r)

    instance_id = instances.create_instance(admin, "Comercial")
    qr = wait_for(lambda: _status(instance_id).get("qr"), what="the QR code")
    assert _status(instance_id)["state"] == "awaiting_qr"
    assert network.scan(qr, BUSINESS, push_name="Loja Demo")
    wait_for(lambda: _status(instance_id)["state"] == "connected", what="connected")

    network.send_from_lead(LEAD, BUSINESS, text="Olá, quero um orçamento", push_name="Carla")
    listed = wait_for(lambda: conversations.list_conversations(agent), what="the conversation in the inbox")
    assert listed[0]["display_name"] == "Carla" and listed[0]["unread_count"] == 1
    conv_id = listed[0]["id"]
    assert [m["text"] for m in conversations.list_messages(agent, conv_id)] == ["Olá, quero um orçamento"]

    message_id = conversations.send_text(agent, conv_id, "Oi, Carla! Já te envio.")
    wait_for(lambda: network.is_typing(LEAD, BUSINESS) or _from_business(network), what="typing or delivery")
    wait_for(lambda: _from_business(network) == ["Oi, Carla! Já te envio."], what="the reply on the lead's phone")
    wait_for(lambda: _status_of(agent, conv_id, message_id) == "delivered", what="delivered tick")
    network.mark_read(LEAD, BUSINESS)
    wait_for(lambda: _status_of(agent, conv_id, message_id) == "read", what="read tick")

    # The number's connector stops; a reply waits and is delivered once when it is back.
    instances.stop_instance(admin, instance_id)
    wait_for(lambda: _status(instance_id)["state"] in ("stopped", "disconnected"), what="connector stopped")
    second = conversations.send_text(agent, conv_id, "Está por aí?")
    time.sleep(1.5)
    assert _from_business(network) == ["Oi, Carla! Já te envio."]
    assert _status_of(agent, conv_id, second) == "pending"
    instances.start_instance(admin, instance_id)
    wait_for(lambda: len(_from_business(network)) == 2, what="the waiting reply")
    wait_for(lambda: _status_of(agent, conv_id, second) == "delivered", what="second reply delivered")
    time.sleep(1)
    assert _from_business(network) == ["Oi, Carla! Já te envio.", "Está por aí?"]  # sent exactly once
    assert instances.list_instances(admin)[0]["status"]["state"] == "connected"  # no new QR after restart


def _from_business(network: SandboxNetwork) -> list[str]:
    return [m["text"] for m in network.lead_chat(LEAD, BUSINESS) if m["direction"] == "from_business"]


def _status_of(actor, conv_id: int, message_id: int) -> str | None:
    return next((m["status"] for m in conversations.list_messages(actor, conv_id) if m["id"] == message_id), None)
