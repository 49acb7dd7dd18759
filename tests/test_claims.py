"""The connector's send claims file: durable across restarts, crashes and Redis outages, pruned only as the workers
allow."""

from __future__ import annotations

import json

import redis

from connector.claims import Claims, claims_path, read_claims
from connector.contracts import CLAIM_HORIZONS, OUT_GROUP, OUT_STREAM, now_ms
from connector.sandbox import SandboxNetwork
from tests.test_connector_support import BUSINESS, LEAD, acks, pair, relay_thread, send_command, wait_until

DAY_MS = 24 * 3600 * 1000


def test_a_claim_outlives_the_process_and_a_released_one_does_not(r, tmp_path):
    claims = Claims(r, 1, tmp_path)
    assert claims.claim(1) is None
    assert claims.claim(1) == "sending", "a second claim of the same command finds the first"
    claims.sent(1, "3EB0A")
    assert claims.claim(2) is None
    claims.release(2)
    assert claims.claim(3) is None  # cut off mid-send

    again = Claims(r, 1, tmp_path)  # the next start
    assert again.claim(1) == "sent:3EB0A"
    assert again.claim(3) == "sending"
    assert again.claim(2) is None, "given back: it may be sent"
    assert read_claims(tmp_path, 1) == {1: "sent:3EB0A", 2: "sending", 3: "sending"}
    assert read_claims(tmp_path, 2) == {}, "each number has its own file"


def test_a_line_torn_by_a_crash_is_dropped_and_the_next_claim_is_kept_whole(r, tmp_path):
    claims = Claims(r, 1, tmp_path)
    assert claims.claim(1) is None
    with claims_path(tmp_path, 1).open("a") as fh:
        fh.write('{"id":2,"state":"send')  # the process died while writing this claim: its send never began
    again = Claims(r, 1, tmp_path)
    assert again.claim(2) is None
    assert Claims(r, 1, tmp_path).claim(2) == "sending"
    assert read_claims(tmp_path, 1) == {1: "sending", 2: "sending"}


def test_nothing_is_forgotten_without_a_readable_horizon(r, tmp_path):
    old = now_ms() - 2 * DAY_MS
    claims = Claims(r, 1, tmp_path, clock_ms=lambda: old)
    assert claims.claim(1) is None
    assert claims.prune() == 0  # no horizon published yet
    r.hset(CLAIM_HORIZONS, "1", "not json")
    assert claims.prune() == 0
    down = Claims(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), 1, tmp_path)
    assert down.prune() == 0, "Redis unreachable"
    r.hset(CLAIM_HORIZONS, "1", json.dumps({"below": None, "at": now_ms()}))
    assert claims.prune() == 1
    assert read_claims(tmp_path, 1) == {}


def test_pruning_compacts_the_file(r, tmp_path):
    clock = [now_ms() - 2 * DAY_MS]
    claims = Claims(r, 1, tmp_path, clock_ms=lambda: clock[0])
    for outbox_id in range(1, 201):
        assert claims.claim(outbox_id) is None
        claims.sent(outbox_id, f"WA{outbox_id}")
    clock[0] = now_ms()
    assert claims.claim(201) is None
    r.hset(CLAIM_HORIZONS, "1", json.dumps({"below": 150, "at": now_ms()}))
    assert claims.prune() == 149
    lines = claims_path(tmp_path, 1).read_text().splitlines()
    assert len(lines) == 52, "one line per claim left"
    assert read_claims(tmp_path, 1)[150] == "sent:WA150"


class _Blip:
    """The relay's Redis, failing the writes that follow a send a few times (Redis restarting just then)."""

    def __init__(self, client, failures: int) -> None:
        self._client, self.failures = client, failures

    def __getattr__(self, name):
        return getattr(self._client, name)

    def hset(self, key, *args, **kwargs):
        if args[:1] == ("last_outbound_at",) and self.failures:
            self.failures -= 1
            raise redis.ConnectionError("restarting")
        return self._client.hset(key, *args, **kwargs)


def test_a_redis_blip_after_a_send_neither_resends_nor_repeats_the_ack(r, tmp_path):
    blip = _Blip(r, failures=3)
    network = SandboxNetwork(r)
    with relay_thread(blip, 1, data_dir=tmp_path):
        pair(r, network, 1)
        send_command(r, 1, 1, "uma vez")
        wait_until(lambda: acks(r, 1).get(1), what="the ack")
        wait_until(lambda: r.xpending(OUT_STREAM.format(1), OUT_GROUP)["pending"] == 0, what="the entry settled")
    assert [(a.ok, a.error) for a in acks(r, 1)[1]] == [(True, None)]
    assert [m["text"] for m in network.lead_chat(LEAD, BUSINESS)] == ["uma vez"]
    assert read_claims(tmp_path, 1)[1].startswith("sent:")
