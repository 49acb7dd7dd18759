"""Pipeline benchmark: inbound messages through sandbox connector -> RQ worker -> outbox -> outbound stream.

Each inbound message makes the bot answer once (the workspace's default reply in "every message" mode),
so the time from a lead's send to the answer's command in the number's outbound stream is the product's
whole inbound-to-outbound path. Next to it, in the same run, a bare *floor*: one process reading a Redis
stream and running the very same statements (``engine.worker.inbound.apply_events``) in one PostgreSQL
transaction per message, then appending to a Redis stream — no connector, no RQ, no batching.

Scenarios: burst (all messages at once) and paced (100 msgs/s), product with 1 and 2 workers, and with
1 worker again with the welcome funnel active (every message from a new lead starts a run that sends two
messages; latency to the first).
Prints msgs/s, p50/p99 latency and peak RSS. Figures, not pass/fail.

    python bench/pipeline.py --messages 2000            # embedded servers in a temp dir
    DATABASE_URL=... REDIS_URL=... python bench/pipeline.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

LEADS = 50
BUSINESS_PHONES = ("5511900000001", "5511900000002")


@dataclass
class Result:
    name: str
    sent: int
    received: int
    seconds: float
    latencies_ms: list[float]
    rss_mb: float

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
        rate = self.received / self.seconds if self.seconds else 0.0
        return (f"{self.name:<34} {rate:>9.0f} msgs/s  p50 {p50:>7.1f} ms  p99 {p99:>7.1f} ms  "
                f"{self.received}/{self.sent} answered  peak RSS {self.rss_mb:>6.0f} MB")


def median_ms(call: Callable[[], object], runs: int = 7) -> float:
    """Median wall time of ``runs`` calls in milliseconds, after one warm-up call (plan cache, pages)."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def servers(tmp: Path) -> tuple[str, str, list]:
    """A fresh database (on ``DATABASE_URL``'s server, else an embedded one under ``tmp``) and a Redis
    (``REDIS_URL``, else an embedded one); returns their URLs and the stops to call, in order."""
    from tests.factories import fresh_database
    from workbench.store.embedded import EmbeddedPostgres, EmbeddedRedis

    stops = []
    pg_url = os.environ.get("DATABASE_URL")
    if not pg_url:
        pg = EmbeddedPostgres(tmp)
        pg_url = pg.start()
        stops.append(pg.stop)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        rs = EmbeddedRedis(Path(f"/tmp/wbb-{uuid.uuid4().hex[:6]}"))
        redis_url = rs.start()
        stops.append(rs.stop)
    database_url, drop = fresh_database(pg_url, "wb_bench")
    stops.insert(0, drop)
    return database_url, redis_url, stops


class OutWatcher(threading.Thread):
    """Timestamps every command appended to the watched outbound streams (a plain XREAD, not the group)."""

    def __init__(self, client, streams: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.last = {s: "$" for s in streams}
        self.seen: dict[str, list[float]] = {}
        self.count = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        from connector.contracts import decode_outbound

        for stream in self.last:  # resolve "$" now so nothing appended later is missed
            info = self.client.xinfo_stream(stream) if self.client.exists(stream) else None
            self.last[stream] = info["last-generated-id"] if info else "0"
        while not self.stop_flag.is_set():
            reply = self.client.xread(self.last, block=50, count=1000)
            now = time.perf_counter()
            for stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.last[stream.decode()] = entry_id
                    command = decode_outbound(fields)
                    self.seen.setdefault(command.to_phone, []).append(now)
                    self.count += 1


def _rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _settle(client, instance_ids: list[int], timeout: float = 120) -> None:
    """Wait until the previous scenario's tail (sends, acks, receipts) is done, so scenarios don't overlap."""
    from sqlalchemy import func, select

    from connector.contracts import inbound_backlog
    from workbench.store.db import session_scope
    from workbench.store.models import Outbox

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            pending = session.scalar(select(func.count()).select_from(Outbox).where(
                Outbox.status == "pending", Outbox.instance_id.in_(instance_ids)))
        if not pending and not any(inbound_backlog(client, i) for i in instance_ids):
            return
        time.sleep(0.1)


def _drive(name: str, n: int, rate: float | None, send, watcher: OutWatcher, procs, timeout: float = 120,
           lead_of=lambda k: f"55219{k % LEADS:08d}", answers: int = 1) -> Result:
    """Send n messages (at ``rate`` per second, or all at once) and wait for their answers.

    ``answers``: outbound commands each message causes; latency is measured to the first of them.
    """
    sent_at: dict[str, list[float]] = {}
    base = watcher.count
    peak = 0.0
    start = time.perf_counter()
    for k in range(n):
        if rate:
            target = start + k / rate
            while (delay := target - time.perf_counter()) > 0:
                time.sleep(min(delay, 0.005))
        lead = lead_of(k)
        sent_at.setdefault(lead, []).append(time.perf_counter())
        send(k, lead)
        if k % 200 == 0:
            peak = max(peak, _rss_mb(procs))
    deadline = time.perf_counter() + timeout
    while watcher.count - base < n * answers and time.perf_counter() < deadline:
        peak = max(peak, _rss_mb(procs))
        time.sleep(0.02)
    end = max((t for ts in watcher.seen.values() for t in ts), default=time.perf_counter())
    latencies = []
    for lead, sends in sent_at.items():
        seen = watcher.seen.get(lead, [])[-len(sends) * answers:]
        firsts = seen[::answers]
        latencies.extend((a - s) * 1000 for s, a in zip(sends, firsts, strict=False))
    return Result(name, n, (watcher.count - base) // answers, end - start, latencies, peak)


def _funnel_scenarios(args, client, admin, product, product_send, watcher, procs, results, paced_n) -> None:
    """The same path with the welcome funnel active: each message comes from a new lead and starts a run
    that sends two messages (welcome, then the menu) and waits for the choice."""
    from engine.core.examples import welcome_funnel
    from workbench.services import funnels

    funnel_id = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel())
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    time.sleep(6)  # workers cache the active funnels for 5 s
    results.append(_drive("product, 1 worker, welcome funnel, burst", args.messages, None, product_send,
                          watcher, procs, lead_of=lambda k: f"55229{k:08d}", answers=2))
    _settle(client, product)
    results.append(_drive(f"product, 1 worker, welcome funnel, paced {args.rate:.0f}/s", paced_n, args.rate,
                          product_send, watcher, procs, lead_of=lambda k: f"55239{k:08d}", answers=2))
    _settle(client, product)
    funnels.set_active(admin, funnel_id, False)
    time.sleep(6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages per burst scenario")
    parser.add_argument("--paced-seconds", type=float, default=10, help="length of each paced scenario")
    parser.add_argument("--rate", type=float, default=100, help="paced rate, msgs/s")
    args = parser.parse_args()

    with_product_servers("wbbench-", {}, lambda children: _run(args, children))


def with_product_servers(prefix: str, env: dict[str, str], body: Callable[[list[subprocess.Popen]], None]) -> None:
    """Run ``body`` with fresh servers (``servers``) in this process's environment, sends unpaced (``env`` adds or
    overrides settings); the processes ``body`` puts in its list are stopped afterwards, then the servers."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    database_url, redis_url, stops = servers(tmp)
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "WORKBENCH_DATA_DIR": str(tmp),
                       "WORKBENCH_TYPING_MS_PER_CHAR": "0", "WORKBENCH_SEND_MIN_GAP_MS": "0",
                       "WORKBENCH_SENDS_PER_MINUTE": "0", **env})
    from workbench.store.config import get_settings

    get_settings.cache_clear()
    children: list[subprocess.Popen] = []
    try:
        body(children)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        for stop in stops:
            stop()


def _spawn(children: list[subprocess.Popen], *argv: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children.append(proc)
    return proc


def _wait(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _run(args, children: list[subprocess.Popen]) -> None:
    from connector.contracts import OUT_STREAM, STATUS_HASH, encode, inbound_backlog, now_ms
    from connector.sandbox import SandboxNetwork
    from engine.worker.inbound import apply_events
    from tests.factories import inbound, make_actor, make_instance, make_workspace
    from workbench.services import outbox
    from workbench.services.workspace_settings import save_setting
    from workbench.store.bus import get_redis
    from workbench.store.db import session_scope
    from workbench.store.migrations import upgrade_database

    upgrade_database(os.environ["DATABASE_URL"])
    client = get_redis()
    client.flushdb()
    ws = make_workspace("Bench")
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Recebido, já respondo!"})
    product = [make_instance(ws, f"bench-{k}") for k in range(len(BUSINESS_PHONES))]
    floor_instance = make_instance(ws, "floor")

    network = SandboxNetwork(client)
    connectors = [_spawn(children, "-m", "connector", "run", "--instance", str(i), "--transport", "sandbox")
                  for i in product]
    for instance_id, phone in zip(product, BUSINESS_PHONES, strict=True):
        _wait(lambda i=instance_id: client.hget(STATUS_HASH.format(i), "qr"), what="QR")
        network.scan(client.hget(STATUS_HASH.format(instance_id), "qr").decode(), phone)
        _wait(lambda i=instance_id: client.hget(STATUS_HASH.format(i), "state") == b"connected", what="connect")

    results: list[Result] = []

    # --- floor: stream -> one transaction per message (same statements) -> stream, in this process -------
    floor_in = "bench:floor:in"
    floor_watch = OutWatcher(client, [OUT_STREAM.format(floor_instance)])
    floor_watch.start()
    stop_floor = threading.Event()

    def floor_loop() -> None:
        from redis import Redis

        from connector.contracts import decode_inbound

        reader = Redis.from_url(os.environ["REDIS_URL"])
        last = "0"
        while not stop_floor.is_set():
            reply = reader.xread({floor_in: last}, block=50, count=1)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = decode_inbound(fields)
                    with session_scope() as session:
                        applied = apply_events(session, floor_instance, [event])
                    outbox.publish(applied.effects.commands, reader)

    floor_thread = threading.Thread(target=floor_loop, daemon=True)
    floor_thread.start()
    me = [psutil.Process()]

    def floor_send(k: int, lead: str) -> None:
        event = inbound(floor_instance, phone=lead, text=f"mensagem {k}", timestamp_ms=now_ms())
        client.xadd(floor_in, encode(event))

    paced_n = int(args.paced_seconds * args.rate)
    results.append(_drive("floor, burst", args.messages, None, floor_send, floor_watch, me))
    results.append(_drive(f"floor, paced {args.rate:.0f}/s", paced_n, args.rate, floor_send, floor_watch, me))
    stop_floor.set()
    floor_watch.stop_flag.set()

    # --- product: sandbox lead -> connector -> wb:in -> RQ drain -> outbox -> wb:out ----------------------
    watcher = OutWatcher(client, [OUT_STREAM.format(i) for i in product])
    watcher.start()

    def product_send(k: int, lead: str) -> None:
        network.send_from_lead(lead, BUSINESS_PHONES[k % len(BUSINESS_PHONES)], text=f"mensagem {k}")

    for count in (1, 2):
        workers = [_spawn(children, "-m", "rq.cli", "worker", "--url", os.environ["REDIS_URL"],
                          "--worker-class", "rq.worker.SimpleWorker", "--logging_level", "ERROR", "inbound")
                   for _ in range(count)]
        time.sleep(2)  # workers import the engine and connect
        procs = [psutil.Process(p.pid) for p in workers + connectors]
        results.append(_drive(f"product, {count} worker(s), burst", args.messages, None, product_send,
                              watcher, procs))
        _settle(client, product)
        results.append(_drive(f"product, {count} worker(s), paced {args.rate:.0f}/s", paced_n, args.rate,
                              product_send, watcher, procs))
        _settle(client, product)
        if count == 1:
            _funnel_scenarios(args, client, admin, product, product_send, watcher, procs, results, paced_n)
        for worker in workers:
            worker.terminate()
            worker.wait(10)
            children.remove(worker)
    watcher.stop_flag.set()
    left = sum(inbound_backlog(client, i) for i in product)

    print(f"\nPipeline benchmark — {args.messages} messages per burst, {paced_n} per paced run, "
          f"{LEADS} leads, {len(product)} numbers; {os.cpu_count()} CPUs")
    for result in results:
        print(result.line())
    floor_burst = results[0].received / results[0].seconds
    for result in results[2:]:
        if "burst" in result.name:
            print(f"{result.name}: {result.received / result.seconds / floor_burst:.2f}x the floor's throughput")
    print(f"events left in inbound streams: {left}")


if __name__ == "__main__":
    main()
