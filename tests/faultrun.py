"""A fault run: the product's own processes under SIGKILLs and a Redis restart, and what the leads received.

``python -m workbench up --only workers --only connectors`` runs against a PostgreSQL database and an embedded
Redis of the run's own (so the run can restart it), with two sandbox numbers, the default reply on ("every"
message) and a funnel whose leads wait through a delay and a reply timeout. Leads send ``messages`` at ``rate``
per second while the run SIGKILLs workers, SIGKILLs a connector and restarts Redis. Then it waits for the
product to settle and counts, from what the sandbox's leads actually received:

- lost / duplicated inbound messages (stored in PostgreSQL vs. sent by the leads),
- lost / duplicated replies (each message from a plain lead earns one default reply),
- timers due and fired (each funnel lead: one delay and one reply timeout, each announced by one message),
- schedulers alive at the end (processes, and the owner of RQ's scheduler locks),
- the longest stretch without any inbound stored while events waited, overall and after each kind of fault.

Used by ``tests/test_faults.py`` (small) and ``bench/chaos.py`` (full size). Figures, not pass/fail.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import create_engine, func, select, text, update

ROOT = Path(__file__).resolve().parent.parent
BUSINESS_PHONES = ("5511900000001", "5511900000002")
DEFAULT_REPLY = "Recebido, já respondo!"
OFFER, AFTER_DELAY, NO_REPLY = "Oferta do dia!", "Passou a espera.", "Sem resposta por aqui."
DELAY_S, REPLY_TIMEOUT_S = 3, 4
KEYWORD = "promo"
ATTRIBUTION_S = 15.0


@dataclass
class Plan:
    """What to send and which faults to cause, at which second of the sending."""

    messages: int = 500
    rate: float = 50.0
    leads: int = 50
    funnel_leads: int = 10
    workers: int = 2
    worker_kills: list[float] = field(default_factory=list)
    connector_kills: list[float] = field(default_factory=list)
    redis_restarts: list[float] = field(default_factory=list)
    redis_down_s: float = 1.0
    settle_timeout_s: float = 180.0


@dataclass
class Report:
    """Counts and figures of one run (see the module docstring)."""

    sent: int = 0
    stored: int = 0
    stored_duplicates: int = 0
    replies_expected: int = 0
    replies_received: int = 0
    reply_duplicates: int = 0
    replies_failed: int = 0
    timers_due: int = 0
    timers_fired: int = 0
    timers_fired_twice: int = 0
    scheduler_processes: int = 0
    scheduler_lock_owners: set[str] = field(default_factory=set)
    scheduler_names: set[str] = field(default_factory=set)
    longest_stall_s: float = 0.0
    longest_stall_at: float = 0.0  # seconds into the run
    stall_after: dict[str, float] = field(default_factory=dict)
    faults: list[tuple[float, str]] = field(default_factory=list)
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (began at, seconds), those over 2 s
    seconds: float = 0.0

    @property
    def inbound_lost(self) -> int:
        return self.sent - self.stored

    @property
    def replies_lost(self) -> int:
        return self.replies_expected - self.replies_received

    def lines(self) -> list[str]:
        """The report as printed lines."""
        after = ", ".join(f"{kind} {s:.1f} s" for kind, s in sorted(self.stall_after.items())) or "no faults"
        return [
            f"inbound: {self.sent} sent, {self.stored} stored, {self.inbound_lost} lost, "
            f"{self.stored_duplicates} duplicated",
            f"replies: {self.replies_expected} expected, {self.replies_received} received, {self.replies_lost} lost, "
            f"{self.reply_duplicates} duplicated, {self.replies_failed} failed sends",
            f"timers: {self.timers_due} due, {self.timers_fired} fired, {self.timers_fired_twice} fired twice",
            f"schedulers alive at the end: {self.scheduler_processes} process(es), lock owners "
            f"{sorted(self.scheduler_lock_owners)}",
            f"longest stall with events waiting: {self.longest_stall_s:.1f} s from {self.longest_stall_at:.1f} s "
            f"(longest after each fault: {after})",
            f"stalls over 2 s: {', '.join(f'{d:.1f} s from {t:.1f} s' for t, d in self.stalls) or 'none'}",
            f"faults: {', '.join(f'{kind} at {t:.1f} s' for t, kind in self.faults) or 'none'}; "
            f"{self.seconds:.0f} s in all",
        ]


@contextlib.contextmanager
def product_env(database_url: str, redis_url: str, data_dir: Path, workers: int) -> Iterator[dict[str, str]]:
    """Point this process's settings, engines and Redis clients at the run's servers; restore them after."""
    from workbench.store import bus, db
    from workbench.store.config import get_settings

    env = {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "WORKBENCH_DATA_DIR": str(data_dir),
        "WORKBENCH_WORKERS": str(workers), "WORKBENCH_TYPING_MS_PER_CHAR": "0", "WORKBENCH_SEND_MIN_GAP_MS": "0",
        "WORKBENCH_SENDS_PER_MINUTE": "0", "WORKBENCH_LOG_LEVEL": "WARNING",
    }
    saved = {k: os.environ.get(k) for k in env}

    def reset() -> None:
        get_settings.cache_clear()
        db.dispose_engines()
        bus.reset_clients()

    os.environ.update(env)
    reset()
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset()


def timer_funnel() -> dict:
    """Keyword "promo" -> offer -> a DELAY_S delay -> message -> wait for a reply, REPLY_TIMEOUT_S -> message."""
    def node(node_id: str, node_type: str, x: int, **data) -> dict:
        return {"id": node_id, "type": node_type, "position": {"x": x * 300, "y": 0}, "data": data}

    nodes = [
        node("inicio", "trigger", 0, kind="keyword", mode="contains", words=[KEYWORD], priority=10),
        node("oferta", "send_message", 1, text=OFFER, typing=False),
        node("espera", "delay", 2, seconds=DELAY_S),
        node("depois", "send_message", 3, text=AFTER_DELAY, typing=False),
        node("pergunta", "wait_reply", 4, validation="any", timeout_s=REPLY_TIMEOUT_S),
        node("sem_resposta", "send_message", 5, text=NO_REPLY, typing=False),
        node("fim", "end", 6),
    ]
    pairs = [("inicio", "oferta", "next"), ("oferta", "espera", "next"), ("espera", "depois", "next"),
             ("depois", "pergunta", "next"), ("pergunta", "fim", "next"), ("pergunta", "sem_resposta", "timeout"),
             ("sem_resposta", "fim", "next")]
    return {"nodes": nodes, "edges": [{"id": f"{s}-{lbl}-{t}", "source": s, "target": t, "label": lbl}
                                      for s, t, lbl in pairs]}


def _setup() -> list[int]:
    """The workspace: default reply on every message, the timer funnel active, two running sandbox numbers."""
    from tests.factories import make_actor, make_instance, make_workspace
    from workbench.services import funnels
    from workbench.services.workspace_settings import save_setting
    from workbench.store.db import session_scope
    from workbench.store.models import Instance

    ws = make_workspace("Falhas")
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": DEFAULT_REPLY})
    funnel_id = funnels.create_funnel(admin, "Promo", timer_funnel())
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    instances = [make_instance(ws, f"numero-{k}") for k in range(len(BUSINESS_PHONES))]
    with session_scope() as s:
        s.execute(update(Instance).values(desired_state="running"))
    return instances


def _descendants(proc: subprocess.Popen, marker: str) -> list[psutil.Process]:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if f" {marker} " in f" {' '.join(child.cmdline())} " and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # Redis may be restarting
            if predicate():
                return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


class _StallMeter(threading.Thread):
    """Samples the stored inbound count; a stall is time with events waiting (sent > stored) and no progress."""

    def __init__(self, engine, sent) -> None:
        super().__init__(daemon=True)
        self.engine, self.sent = engine, sent
        self.stored = 0
        self.stalls: list[tuple[float, float]] = []  # (start, end), monotonic
        self.stop = threading.Event()

    def run(self) -> None:
        last_progress = time.monotonic()
        while not self.stop.wait(0.1):
            try:
                with self.engine.connect() as conn:
                    stored = conn.execute(text("SELECT count(*) FROM messages WHERE direction = 'in'")).scalar()
            except Exception:  # noqa: BLE001 - PostgreSQL is not under test here; a failed sample is skipped
                continue
            now = time.monotonic()
            if stored > self.stored or self.sent() <= stored:
                if now - last_progress > 0.5:
                    self.stalls.append((last_progress, now))
                last_progress = now
            self.stored = stored


def run(plan: Plan, database_url: str, work_dir: Path, log_path: Path | None = None) -> Report:
    """Run ``plan`` against a fresh, migrated database at ``database_url``; ``work_dir`` holds Redis and data."""
    from connector.contracts import STATUS_HASH
    from connector.sandbox import SandboxNetwork
    from workbench.store.embedded import EmbeddedRedis

    work_dir.mkdir(parents=True, exist_ok=True)
    redis_server = EmbeddedRedis(work_dir / "r")
    redis_url = redis_server.start()
    up: subprocess.Popen | None = None
    report = Report()
    try:
        with product_env(database_url, redis_url, work_dir / "data", plan.workers) as env:
            from workbench.store.bus import get_redis

            instances = _setup()
            log = (log_path or work_dir / "up.log").open("w")
            up = subprocess.Popen([sys.executable, "-m", "workbench", "up", "--only", "workers", "--only",
                                   "connectors"], cwd=ROOT, env=dict(os.environ) | env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
            client = get_redis()
            network = SandboxNetwork(client)
            for instance_id, phone in zip(instances, BUSINESS_PHONES, strict=True):
                _wait(lambda i=instance_id: client.hget(STATUS_HASH.format(i), "qr"), 60, "a QR code")
                network.scan(client.hget(STATUS_HASH.format(instance_id), "qr").decode(), phone)
                _wait(lambda i=instance_id: client.hget(STATUS_HASH.format(i), "state") == b"connected", 60,
                      "the number to connect")
            _wait(lambda: len(_descendants(up, "workbench worker")) == plan.workers, 60, "the workers")
            report = _drive(plan, up, network, redis_server, create_engine(database_url))
            schedulers = _descendants(up, "workbench scheduler")
            report.scheduler_processes = len(schedulers)
            report.scheduler_names = {f"{socket.gethostname()}.{p.pid}" for p in schedulers}
            report.scheduler_lock_owners = {
                (v or b"").decode() for v in client.mget("rq:scheduler-lock:inbound", "rq:scheduler-lock:default")}
    finally:
        if up is not None and up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
        redis_server.stop()
        shutil.rmtree(work_dir / "r", ignore_errors=True)
    return report


def _drive(plan: Plan, up: subprocess.Popen, network, redis_server, engine) -> Report:
    """Send, cause the faults, wait for the product to settle, and count."""
    rng = random.Random(7)
    every = max(1, plan.messages // max(1, plan.funnel_leads))
    sent_by_lead: Counter = Counter()
    funnel_leads: list[str] = []
    sent = [0]
    meter = _StallMeter(engine, lambda: sent[0])
    faults = sorted([(t, "worker kill") for t in plan.worker_kills] + [(t, "connector kill") for t in
                    plan.connector_kills] + [(t, "Redis restart") for t in plan.redis_restarts])
    report = Report(faults=faults)
    meter.start()
    start = time.monotonic()

    def cause(kind: str) -> None:
        if kind == "worker kill":
            victims = _descendants(up, "workbench worker")
            if victims:
                rng.choice(victims).kill()
        elif kind == "connector kill":
            victims = _descendants(up, "connector run")
            if victims:
                rng.choice(victims).kill()
        else:
            redis_server.stop()
            time.sleep(plan.redis_down_s)
            redis_server.start()

    def fault_loop() -> None:
        for at, kind in faults:
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cause(kind)

    faulter = threading.Thread(target=fault_loop, daemon=True)
    faulter.start()
    for k in range(plan.messages):
        target = start + k / plan.rate
        if (delay := target - time.monotonic()) > 0:
            time.sleep(delay)
        business = BUSINESS_PHONES[k % len(BUSINESS_PHONES)]
        if k % every == 0 and len(funnel_leads) < plan.funnel_leads:
            lead = f"55319{len(funnel_leads):08d}"
            funnel_leads.append(lead)
            body = f"quero a {KEYWORD}"
        else:
            lead = f"55219{k % plan.leads:08d}"
            body = f"mensagem {k}"
        while True:  # WhatsApp holds a lead's message while the number is away; the sandbox lives in Redis
            try:
                network.send_from_lead(lead, business, text=body)
                break
            except Exception:  # noqa: BLE001 - Redis restarting
                time.sleep(0.05)
        sent_by_lead[(lead, business)] += 1
        sent[0] += 1
    faulter.join()
    report.sent = sent[0]
    funnel_set = {key for key in sent_by_lead if key[0] in set(funnel_leads)}
    plain = {key: n for key, n in sent_by_lead.items() if key not in funnel_set}
    report.replies_expected = sum(plain.values())
    report.timers_due = 2 * len(funnel_set)

    def received() -> tuple[dict, dict]:
        replies, timers = {}, {}
        for lead, business in sent_by_lead:
            texts = Counter(m["text"] for m in network.lead_chat(lead, business, limit=10_000)
                            if m["direction"] == "from_business")
            if (lead, business) in funnel_set:
                timers[(lead, business)] = texts
            else:
                replies[(lead, business)] = texts[DEFAULT_REPLY]
        return replies, timers

    def settled() -> bool:
        replies, timers = received()
        missing = (report.sent - meter.stored, sum(max(0, n - replies[k]) for k, n in plain.items()),
                   sum((not t[AFTER_DELAY]) + (not t[NO_REPLY]) for t in timers.values()))
        if os.environ.get("FAULTRUN_DEBUG"):
            print(f"{time.monotonic() - start:.0f} s: missing inbound, replies, timers: {missing}", flush=True)
        return missing == (0, 0, 0)

    with contextlib.suppress(TimeoutError):
        _wait(settled, plan.settle_timeout_s, "the product to settle")
    time.sleep(2)  # anything sent twice arrives within this
    meter.stop.set()
    meter.join()
    report.seconds = time.monotonic() - start
    replies, timers = received()
    report.replies_received = sum(min(replies[k], n) for k, n in plain.items())
    report.reply_duplicates = sum(max(0, replies[k] - n) for k, n in plain.items())
    report.timers_fired = sum(min(1, t[AFTER_DELAY]) + min(1, t[NO_REPLY]) for t in timers.values())
    report.timers_fired_twice = sum((t[AFTER_DELAY] > 1) + (t[NO_REPLY] > 1) + (t[OFFER] > 1)
                                    for t in timers.values())
    with engine.connect() as conn:
        report.stored = conn.execute(text(
            "SELECT count(DISTINCT (instance_id, wa_id)) FROM messages WHERE direction = 'in'")).scalar()
        report.stored_duplicates = conn.execute(text(
            "SELECT count(*) FROM messages WHERE direction = 'in'")).scalar() - report.stored
        report.replies_failed = conn.execute(select(func.count()).select_from(text("outbox")).where(
            text("status = 'failed'"))).scalar()
    engine.dispose()
    report.stalls = [(begin - start, end - begin) for begin, end in meter.stalls if end - begin > 2]
    if meter.stalls:
        begin, end = max(meter.stalls, key=lambda stall: stall[1] - stall[0])
        report.longest_stall_s, report.longest_stall_at = end - begin, begin - start
    # A stall belongs to the last fault before it began (or that it spans), counted from that fault, if it began
    # within ATTRIBUTION_S of it; later ones count only in the overall figure.
    moments = [start + at for at, _ in faults] + [float("inf")]
    for (at, kind), following in zip(faults, moments[1:], strict=True):
        moment = start + at
        until = min(following, moment + ATTRIBUTION_S)
        after = [end - max(begin, moment) for begin, end in meter.stalls if end > moment and begin < until]
        report.stall_after[kind] = max(report.stall_after.get(kind, 0.0), max(after, default=0.0))
    return report
