"""Pipeline benchmark: inbound messages through sandbox connector -> RQ worker -> outbox -> connector -> the lead.

Each inbound message makes the bot answer once (the workspace's default reply in "every message" mode),
so the time from a lead's send to the answer reaching the lead's sandbox phone (the network's "delivered"
receipt) is the product's whole inbound-to-outbound path, the send included. Next to it, in the same run and on
the same servers, the *bare floor* (``bench/floor.py``): a producer appends JSON messages to a Redis stream, K
consumer processes run one 4-statement PostgreSQL transaction per message on bench-only tables and append the
reply to a stream — no connector, no RQ, no batching. Every product figure is printed as a ratio to the matching
floor figure.

Scenarios: floor with 1 and 2 consumers (burst) and 1 consumer paced; product (``python -m workbench workers``:
workers, scheduler, calls pool; plus one connector per number) with 1 and 2 workers, burst and paced, and with
1 and 2 workers again with the welcome funnel active (``--funnel-workers``; every message from a new lead starts a
run that sends two messages and waits for a choice; latency to the first).
Prints msgs/s, p50/p99 latency, the peak memory (RSS and PSS) of the product's processes (the dashboards' refresh,
which runs a second or two each minute, apart), and where the time goes:
CPU time per message of each group of processes (this bench, PostgreSQL, Redis, connectors, workers or floor
consumers), the Redis commands per message, by command, and the disk's stalls during each run (``DiskProbe``: the
paced runs' p99, the floor's too, is often one of them). Figures, not pass/fail.

On a shared virtual machine a single run's ratios move by a quarter from one minute to the next, the floor's as
much as the product's: ``--rounds N`` runs the floor and the product N times, alternately, and adds the median and
range of each figure over the rounds, each product figure taken against the floor of its own round.

    python bench/pipeline.py --messages 2000 --paced-seconds 10   # embedded servers in a temp dir
    python bench/pipeline.py --rounds 5                           # medians over five alternated rounds
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
from dataclasses import dataclass, field
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
    rss_mb: float  # peak, summed over the product's processes but the dashboards' refresh
    pss_mb: float
    refresh_mb: float  # peak RSS of the dashboards' refresh when it ran during the scenario, else 0
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU time per message, by group of processes
    redis_calls: dict[str, float] = field(default_factory=dict)  # Redis commands per message, by command
    pg_transactions: float = 0.0  # PostgreSQL transactions per message (every database of the server)
    disk_stalls_ms: list[float] = field(default_factory=list)  # the disk probe's slow fsyncs during the run

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        lat = sorted(self.latencies_ms)
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

    def line(self, floor: Result | None = None) -> str:
        """One table row; next to ``floor``: throughput as a ratio to its (burst), p99 as a multiple of its (paced)."""
        rss = f"RSS {self.rss_mb:>4.0f} MB PSS {self.pss_mb:>4.0f} MB" if self.rss_mb else " " * 24
        if self.refresh_mb:
            rss += f" (+ refresh {self.refresh_mb:.0f} MB)"
        ratio = ""
        if floor is not None and "paced" in self.name:
            ratio = f"p99 {self.pct(0.99) / floor.pct(0.99):>5.1f}x floor"
        elif floor is not None:
            ratio = f"{self.rate / floor.rate:>5.2f}x floor"
        row = (f"{self.name:<44} {self.rate:>7.0f} msgs/s  p50 {self.pct(0.5):>8.1f} ms  p99 {self.pct(0.99):>8.1f} ms"
               f"  {self.received:>5}/{self.sent:<5} {rss}  {ratio}")
        if self.cpu_us:
            parts = ", ".join(f"{name} {us:.0f}" for name, us in self.cpu_us.items())
            row += f"\n{'':<6}CPU µs per message: {parts}; total {sum(self.cpu_us.values()):.0f}"
        if self.redis_calls:
            top = ", ".join(f"{name} {count:.1f}" for name, count in
                            sorted(self.redis_calls.items(), key=lambda item: -item[1]) if count >= 0.1)
            row += f"\n{'':<6}Redis commands per message: {sum(self.redis_calls.values()):.1f} ({top})"
        if self.pg_transactions:
            row += f"\n{'':<6}PostgreSQL transactions per message: {self.pg_transactions:.2f}"
        if self.disk_stalls_ms:
            row += (f"\n{'':<6}disk: {len(self.disk_stalls_ms)} fsync(s) over {DiskProbe.STALL_MS:.0f} ms during "
                    f"the run, longest {max(self.disk_stalls_ms):.0f} ms")
        return row

class DiskProbe(threading.Thread):
    """Fsync a small file every ``EVERY_S`` and note the fsyncs slower than ``STALL_MS``, with when they ended.

    Every commit of PostgreSQL and every send claim waits for the disk, the floor's commits too: a virtual disk that
    stalls for a tenth of a second holds up every message in flight, and the paced runs' p99 is often that stall.
    Printed next to each scenario, it tells the machine's noise from the product's."""

    EVERY_S = 0.05
    STALL_MS = 20.0

    def __init__(self, folder: Path) -> None:
        super().__init__(name="disk-probe", daemon=True)
        self.path = folder / "disk-probe"
        self.stalls: list[tuple[float, float]] = []  # (perf_counter at the end, milliseconds)

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"probe\n")
                began = time.perf_counter()
                os.fsync(fd)
                ended = time.perf_counter()
                if (ended - began) * 1000 > self.STALL_MS:
                    self.stalls.append((ended, (ended - began) * 1000))
                time.sleep(self.EVERY_S)
        finally:
            os.close(fd)

    def between(self, start: float, end: float) -> list[float]:
        """The stalls (ms) that ended between two ``perf_counter`` readings."""
        return [ms for ended, ms in self.stalls if start <= ended <= end]


_DISK: DiskProbe | None = None


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
    """Timestamps every command appended to the watched outbound streams (a plain XREAD, not the group).

    ``phone_of`` reads the addressee of an entry, None for an entry that is no answer (default: the product's
    ``OutboundCommand``)."""

    def __init__(self, client, streams: list[str], phone_of: Callable[[dict], str] | None = None) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.last = {s: "$" for s in streams}
        self.phone_of = phone_of
        self.seen: dict[str, list[float]] = {}
        self.count = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        from connector.contracts import decode_outbound

        phone_of = self.phone_of or (lambda fields: decode_outbound(fields).to_phone)
        for stream in self.last:  # resolve "$" now so nothing appended later is missed
            info = self.client.xinfo_stream(stream) if self.client.exists(stream) else None
            self.last[stream] = info["last-generated-id"] if info else "0"
        while not self.stop_flag.is_set():
            reply = self.client.xread(self.last, block=50, count=1000)
            now = time.perf_counter()
            for stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.last[stream.decode()] = entry_id
                    phone = phone_of(fields)
                    if phone is not None:  # None: an entry of the stream that is not an answer
                        self.seen.setdefault(phone, []).append(now)
                        self.count += 1


def _delivered_to(fields: dict[bytes, bytes]) -> str | None:
    """The lead of a sandbox "delivered" receipt in a business number's inbox (an answer reached the lead's phone);
    None for the inbox's other entries (the leads' messages)."""
    import json

    if b'"delivered"' not in fields[b"p"]:  # most entries: parsing them all would weigh on the bench's own CPU
        return None
    entry = json.loads(fields[b"p"])
    return entry["lead"] if entry.get("kind") == "receipt" and entry.get("status") == "delivered" else None


def _processes(roots: list[int], descendants: bool = True) -> list[psutil.Process]:
    """The processes ``roots`` that still run, with all their descendants unless ``descendants`` is False."""
    found = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)] if descendants else [root]
        except psutil.NoSuchProcess:
            continue
    return found


class PeakMemory(threading.Thread):
    """The peaks of ``_memory_mb(roots)``, sampled every ``EVERY_S`` in a thread of its own and once more at
    ``finish``. PSS walks each process's page tables (about 3 ms of CPU per process here): sampled every 0.5 s from
    the sending loop, as before, it held up the sends and took 4% of a core from the product it measured."""

    EVERY_S = 2.0

    def __init__(self, roots: list[int]) -> None:
        super().__init__(name="peak-memory", daemon=True)
        self.roots = roots
        self.peak = (0.0, 0.0, 0.0)
        self.done = threading.Event()

    def run(self) -> None:
        if not self.roots:
            return
        self._sample()
        while not self.done.wait(self.EVERY_S):
            self._sample()

    def finish(self) -> tuple[float, float, float]:
        """Stop sampling, take the last sample and return the peaks (zeros without roots)."""
        self.done.set()
        self.join()
        if self.roots:
            self._sample()
        return self.peak

    def _sample(self) -> None:
        self.peak = tuple(max(a, b) for a, b in zip(self.peak, _memory_mb(self.roots), strict=True))


def _memory_mb(roots: list[int]) -> tuple[float, float, float]:
    """Resident memory of the processes ``roots`` and all their descendants, in MB: (RSS, PSS, RSS of the
    dashboards' refresh). Forked workers share their parent's pages, which RSS counts in each process and PSS
    divides among them. The refresh (``refresh-analytics``, a minute apart, a second or two long) is counted apart:
    whether it overlaps a scenario's samples is chance, and the message path's own figure should not depend on it."""
    rss = pss = refresh = 0
    for proc in _processes(roots):
        try:
            info = proc.memory_full_info()
            is_refresh = "refresh-analytics" in proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if is_refresh:
            refresh += info.rss
            continue
        rss += info.rss
        pss += info.pss
    return rss / 2**20, pss / 2**20, refresh / 2**20


def pg_transactions() -> int:
    """Transactions the PostgreSQL server has ended so far, over its databases (``pg_stat_database``; a backend
    reports its own at most once a second, so a figure over a few seconds is close, not exact)."""
    from sqlalchemy import text

    from workbench.store.db import session_scope

    with session_scope() as session:
        return int(session.scalar(text("SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database")) or 0)


def commandstats(client) -> dict[str, int]:
    """Commands the Redis server has run so far, by command (``INFO commandstats``, without ``info`` itself)."""
    return {name.removeprefix("cmdstat_"): stats["calls"]
            for name, stats in client.info("commandstats").items() if name != "cmdstat_info"}


class CpuMeter:
    """CPU time (user + system) spent by groups of processes, each a root with all its descendants.

    Groups: this process alone (the lead's sends, the watcher, the memory sampling), the servers (PostgreSQL's
    postmaster with its backends, redis-server) and whatever ``add`` names (connectors, workers, floor consumers).
    Processes that end between two readings take their time with them, which a scenario's own processes never do.
    """

    def __init__(self, client) -> None:
        from sqlalchemy import text

        from workbench.store.db import session_scope

        with session_scope() as session:
            backend = session.scalar(text("SELECT pg_backend_pid()"))
        self.client = client
        self.groups: dict[str, list[int]] = {"bench": [os.getpid()]}
        try:  # the servers are measured when they run on this machine
            self.groups["postgres"] = [psutil.Process(backend).ppid()]
            self.groups["redis"] = [int(client.info("server")["process_id"])]
        except (psutil.Error, KeyError):
            pass

    def add(self, name: str, pids: list[int]) -> None:
        """Measure ``pids`` (and their descendants) as the group ``name`` from now on."""
        self.groups[name] = pids

    def drop(self, name: str) -> None:
        self.groups.pop(name, None)

    def wait_quiet(self, name: str, below: float = 0.1, timeout: float = 30) -> None:
        """Wait until the group ``name`` uses less than ``below`` of a CPU over half a second (done starting)."""
        deadline = time.monotonic() + timeout
        used = self.read()[name]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.read()[name]
            if now - used < below * 0.5:
                return
            used = now

    def read(self) -> dict[str, float]:
        """Seconds of CPU each group has used so far."""
        found = {}
        for name, roots in self.groups.items():
            seconds = 0.0
            for proc in _processes(roots, descendants=name != "bench"):  # the bench's children are other groups
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                seconds += times.user + times.system
            found[name] = seconds
        return found


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


def _drive(name: str, n: int, rate: float | None, send, watcher: OutWatcher, roots: list[int], meter: CpuMeter,
           timeout: float = 120, lead_of=lambda k: f"55219{k % LEADS:08d}", answers: int = 1) -> Result:
    """Send n messages (at ``rate`` per second, or all at once) and wait for their answers.

    ``answers``: outbound commands each message causes; latency is measured to the first of them.
    ``roots``: the processes (with their descendants) whose peak memory is reported; empty for none.
    """
    sent_at: dict[str, list[float]] = {}
    base = watcher.count
    memory = PeakMemory(roots)
    memory.start()
    cpu_before = meter.read()
    calls_before = commandstats(meter.client)
    transactions_before = pg_transactions()
    start = time.perf_counter()
    for k in range(n):
        if rate:
            target = start + k / rate
            while (delay := target - time.perf_counter()) > 0:
                time.sleep(min(delay, 0.005))
        lead = lead_of(k)
        sent_at.setdefault(lead, []).append(time.perf_counter())
        send(k, lead)
    deadline = time.perf_counter() + timeout
    while watcher.count - base < n * answers and time.perf_counter() < deadline:
        time.sleep(0.02)
    peak = memory.finish()
    end = max((t for ts in watcher.seen.values() for t in ts), default=time.perf_counter())
    latencies = []
    for lead, sends in sent_at.items():
        seen = watcher.seen.get(lead, [])[-len(sends) * answers:]
        firsts = seen[::answers]
        latencies.extend((a - s) * 1000 for s, a in zip(sends, firsts, strict=False))
    cpu = {group: (seconds - cpu_before.get(group, 0.0)) * 1e6 / n for group, seconds in meter.read().items()}
    calls = {name: (count - calls_before.get(name, 0)) / n for name, count in commandstats(meter.client).items()}
    return Result(name, n, (watcher.count - base) // answers, end - start, latencies, *peak, cpu_us=cpu,
                  redis_calls={name: count for name, count in calls.items() if count > 0},
                  pg_transactions=(pg_transactions() - transactions_before - 2) / n,  # less the two readings
                  disk_stalls_ms=_DISK.between(start, end) if _DISK is not None else [])


def _floor_scenarios(args, client, children: list[subprocess.Popen], paced_n: int,
                     meter: CpuMeter) -> dict[str, Result]:
    """The bare floor (``bench/floor.py``) with 1 and 2 consumer processes, burst, and 1 consumer paced."""
    import json

    from bench import floor

    def send(k: int, lead: str) -> None:
        client.xadd(floor.IN, {"d": json.dumps(floor.message(k))})

    def lead_of(k: int) -> str:
        return "5511" + str(k % floor.CONTACTS).zfill(9)

    found = {}
    for count in (1, 2):
        floor.reset(os.environ["DATABASE_URL"], client)
        watcher = OutWatcher(client, [floor.OUT.format(1), floor.OUT.format(2)],
                             phone_of=lambda fields: json.loads(fields[b"d"])["to"])
        watcher.start()
        client.delete(*client.keys(floor.READY.format("*")) or ["-"])
        consumers = [_spawn(children, str(ROOT / "bench" / "floor.py"), "consume", os.environ["REDIS_URL"],
                            os.environ["DATABASE_URL"]) for _ in range(count)]
        _wait(lambda c=count: len(client.keys(floor.READY.format("*"))) >= c, what="floor consumers")
        meter.add("consumers", [c.pid for c in consumers])
        found[f"burst{count}"] = _drive(f"floor, {count} consumer(s), burst", args.messages, None, send, watcher,
                                        [], meter, lead_of=lead_of)
        if count == 1:
            found["paced"] = _drive(f"floor, 1 consumer, paced {args.rate:.0f}/s", paced_n, args.rate, send,
                                    watcher, [], meter, lead_of=lead_of)
        meter.drop("consumers")
        watcher.stop_flag.set()
        for consumer in consumers:
            consumer.terminate()
            consumer.wait(10)
            children.remove(consumer)
    return found


def _funnel_scenarios(args, client, admin, funnel_id: int, product, product_send, watcher, roots, paced_n,
                      meter: CpuMeter, count: int, round_no: int) -> list[Result]:
    """The same path with the welcome funnel active: each message comes from a new lead and starts a run
    that sends two messages (welcome, then the menu) and waits for the choice."""
    from workbench.services import funnels

    funnels.set_active(admin, funnel_id, True)
    time.sleep(6)  # workers cache the active funnels for 5 s
    # each scenario's leads are new to the installation: the round and the worker count are in their numbers
    burst_area, paced_area = 23 + 2 * round_no, 24 + 2 * round_no
    found = [_drive(f"product, {count} worker(s), welcome funnel, burst", args.messages, None, product_send,
                    watcher, roots, meter, lead_of=lambda k: f"55{burst_area}{count}{k:08d}", answers=2)]
    _settle(client, product)
    found.append(_drive(f"product, {count} worker(s), welcome funnel, paced {args.rate:.0f}/s", paced_n, args.rate,
                        product_send, watcher, roots, meter, lead_of=lambda k: f"55{paced_area}{count}{k:08d}",
                        answers=2))
    _settle(client, product)
    funnels.set_active(admin, funnel_id, False)
    time.sleep(6)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages per burst scenario")
    parser.add_argument("--paced-seconds", type=float, default=10, help="length of each paced scenario")
    parser.add_argument("--rate", type=float, default=100, help="paced rate, msgs/s")
    parser.add_argument("--workers", default="1,2", help="worker counts to run the product with (comma-separated)")
    parser.add_argument("--funnel-workers", default="1,2",
                        help="worker counts to run the welcome-funnel scenarios with (comma-separated, of --workers)")
    parser.add_argument("--no-funnel", action="store_true", help="skip the welcome-funnel scenarios")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the floor and the product this many times, alternately, and print the median and "
                             "range of each figure over the rounds as well")
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
    from connector.contracts import STATUS_HASH, inbound_backlog
    from connector.sandbox import INBOX, SandboxNetwork
    from engine.core.examples import welcome_funnel
    from tests.factories import make_actor, make_instance, make_workspace
    from workbench.services import funnels
    from workbench.services.workspace_settings import save_setting
    from workbench.store.bus import get_redis
    from workbench.store.migrations import upgrade_database

    global _DISK
    upgrade_database(os.environ["DATABASE_URL"])
    client = get_redis()
    client.flushdb()
    _DISK = DiskProbe(Path(os.environ["WORKBENCH_DATA_DIR"]))
    _DISK.start()
    paced_n = int(args.paced_seconds * args.rate)
    meter = CpuMeter(client)

    ws = make_workspace("Bench")
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Recebido, já respondo!"})
    funnel_id = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel())
    funnels.publish(admin, funnel_id)
    product = [make_instance(ws, f"bench-{k}") for k in range(len(BUSINESS_PHONES))]

    network = SandboxNetwork(client)
    connectors = [_spawn(children, "-m", "connector", "run", "--instance", str(i), "--transport", "sandbox")
                  for i in product]
    for instance_id, phone in zip(product, BUSINESS_PHONES, strict=True):
        _wait(lambda i=instance_id: client.hget(STATUS_HASH.format(i), "qr"), what="QR")
        network.scan(client.hget(STATUS_HASH.format(instance_id), "qr").decode(), phone)
        _wait(lambda i=instance_id: client.hget(STATUS_HASH.format(i), "state") == b"connected", what="connect")
    meter.add("connectors", [c.pid for c in connectors])
    # The answer counts once it reached the lead's phone: the sandbox network's "delivered" receipt in the number's
    # inbox (the connector deletes what it sent from the outbound stream, so a reader of that stream may miss it).
    watcher = OutWatcher(client, [INBOX.format(phone) for phone in BUSINESS_PHONES], phone_of=_delivered_to)
    watcher.start()

    def product_send(k: int, lead: str) -> None:
        network.send_from_lead(lead, BUSINESS_PHONES[k % len(BUSINESS_PHONES)], text=f"mensagem {k}")

    rounds = []
    for round_no in range(args.rounds):
        floors = _floor_scenarios(args, client, children, paced_n, meter)
        rows = [(floors["burst1"], None), (floors["burst2"], None), (floors["paced"], None)]
        rows += _product_scenarios(args, client, children, admin, funnel_id, product, connectors, product_send,
                                   watcher, paced_n, meter, floors, round_no)
        rounds.append(rows)
    watcher.stop_flag.set()
    left = sum(inbound_backlog(client, i) for i in product)

    print(f"\nPipeline benchmark — {args.messages} messages per burst, {paced_n} per paced run, "
          f"{LEADS} leads, {len(product)} numbers; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    print("Ratios: product burst msgs/s to the floor's with as many consumers as workers (the welcome funnel to "
          "1 consumer, with any number of workers); paced p99 as a multiple of the floor's paced p99. Memory: peak of "
          "the workers' supervisor with its workers, scheduler and calls pool, plus the connectors; the dashboards' "
          "refresh apart, when it ran.")
    for round_no, rows in enumerate(rounds):
        if len(rounds) > 1:
            print(f"\n--- round {round_no + 1} of {len(rounds)}")
        for result, floor_result in rows:
            print(result.line(floor_result))
    if len(rounds) > 1:
        print(f"\nOver the {len(rounds)} rounds (each product figure next to the floor of its own round): "
              "median [lowest – highest]")
        for line in summary(rounds):
            print(line)
    print(f"events left in inbound streams: {left}")


def _product_scenarios(args, client, children, admin, funnel_id, product, connectors, product_send, watcher,
                       paced_n, meter, floors, round_no) -> list[tuple[Result, Result]]:
    """The product with each of ``--workers`` (burst, paced, and the welcome funnel for ``--funnel-workers``),
    each row next to the floor it is compared with."""
    from rq import Worker

    rows = []
    for count in (int(c) for c in args.workers.split(",")):
        # the product as deployed: the workers' supervisor forks the workers, the scheduler and the calls pool
        workers = _spawn(children, "-m", "workbench", "workers", "--count", str(count))
        _wait(lambda c=count: len(Worker.all(connection=client)) >= c, what="workers")
        roots = [workers.pid, *(c.pid for c in connectors)]
        meter.add("workers", [workers.pid])
        meter.wait_quiet("workers")  # the calls pool and the scheduler finish starting before the first send
        burst = _drive(f"product, {count} worker(s), burst", args.messages, None, product_send, watcher, roots, meter)
        rows.append((burst, floors[f"burst{count}"]))
        _settle(client, product)
        paced = _drive(f"product, {count} worker(s), paced {args.rate:.0f}/s", paced_n, args.rate, product_send,
                       watcher, roots, meter)
        rows.append((paced, floors["paced"]))
        _settle(client, product)
        if count in {int(c) for c in args.funnel_workers.split(",")} and not args.no_funnel:
            funnel_burst, funnel_paced = _funnel_scenarios(args, client, admin, funnel_id, product, product_send,
                                                           watcher, roots, paced_n, meter, count, round_no)
            rows += [(funnel_burst, floors["burst1"]), (funnel_paced, floors["paced"])]
        workers.terminate()
        workers.wait(20)
        children.remove(workers)
        _wait(lambda: not Worker.all(connection=client), what="workers to leave")
    return rows


def summary(rounds: list[list[tuple[Result, Result | None]]]) -> list[str]:
    """One line per scenario over several rounds: the median and range of its throughput, p99 and ratio to the
    floor of the same round (a single round's ratio is at the machine's mercy: a noisy minute moves it by a quarter)."""
    def spread(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} [{min(values):{fmt}} – {max(values):{fmt}}]"

    lines = []
    for k, (first, _) in enumerate(rounds[0]):
        results = [rows[k] for rows in rounds]
        line = (f"{first.name:<44} {spread([r.rate for r, _ in results], '.0f')} msgs/s  "
                f"p99 {spread([r.pct(0.99) for r, _ in results], '.1f')} ms")
        if results[0][1] is not None and "paced" in first.name:
            line += f"  p99 {spread([r.pct(0.99) / f.pct(0.99) for r, f in results], '.1f')}x floor"
        elif results[0][1] is not None:
            line += f"  {spread([r.rate / f.rate for r, f in results], '.2f')}x floor"
        lines.append(line)
    return lines


if __name__ == "__main__":
    main()
