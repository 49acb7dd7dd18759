"""A fault run: the product's own processes under faults, and what the leads received, counted one by one.

``python -m workbench up --only workers --only connectors`` runs against a PostgreSQL and a Redis of the run's
own (embedded, so the run can stop, restart and empty them), with two sandbox numbers, the welcome funnel
(``engine/core/examples.py``: a welcome, the menu, and a reply timeout) and the default reply on every message
the funnel does not take. Each lead follows a script, so every reply it should get is known:

- an *answering* lead says hello (welcome + menu), answers "1" once it sees the menu (route to Vendas and
  "Perfeito! ..."; the bot is then paused, so its further messages get no reply);
- a *silent* lead says hello (welcome + menu), waits for the timeout message ("Quando quiser continuar ..."),
  then sends its further messages, each answered by the default reply.

A lead reacts to what its sandbox phone shows, as a person would, so a fault that delays the bot never turns
a reply into a race with a timer. Meanwhile the run SIGKILLs workers and connectors, restarts Redis (keeping
its data, or emptied: everything but the simulated WhatsApp network, ``wb:sbx:*``, which is not ours to lose)
and stops PostgreSQL (``pg_ctl stop -m fast``: connections break and new ones are refused, then it starts
again on the same data). Then it waits for the product to settle and counts (``Report``): inbound sent /
stored / duplicated / lost, replies expected / delivered / duplicated / unexpected, timers due / fired /
fired twice / fired after a reply, funnel runs still live, and, for inbound messages that were lost, whether
the sandbox had been told they were received (the pre-spool window: acknowledged to WhatsApp, never stored).

Used by ``tests/test_faults.py`` (small) and ``bench/chaos.py`` (full size).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text, update

ROOT = Path(__file__).resolve().parent.parent
BUSINESS_PHONES = ("5511900000001", "5511900000002")
DEFAULT_REPLY = "Recebido, já respondo!"
# What the welcome funnel sends, told apart by how each text begins.
WELCOME, MENU, ROUTED, TIMED_OUT = "Olá", "Como podemos ajudar?", "Perfeito!", "Quando quiser continuar"
KINDS = (WELCOME, MENU, ROUTED, TIMED_OUT, DEFAULT_REPLY)
ATTRIBUTION_S = 15.0
# Keys of the simulated WhatsApp network: WhatsApp's servers keep their data when our Redis loses its own.
SANDBOX_PREFIX = "wb:sbx:"
_WIPE = """
local n = 0
for _, key in ipairs(redis.call('KEYS', '*')) do
  if string.sub(key, 1, string.len(ARGV[1])) ~= ARGV[1] then redis.call('DEL', key); n = n + 1 end
end
return n
"""


@dataclass
class Plan:
    """How many messages from how many leads, and which faults at which second of the sending.

    ``menu_timeout_s`` is the welcome funnel's wait for the menu's answer; keep it longer than the longest
    outage, or an answer held up by the outage races the timeout (either outcome is right, but not known
    in advance).
    """

    messages: int = 1000
    rate: float = 50.0
    leads: int = 100
    menu_timeout_s: float = 20.0
    workers: int = 2
    worker_kills: list[float] = field(default_factory=list)
    connector_kills: list[float] = field(default_factory=list)
    redis_restarts: list[float] = field(default_factory=list)
    redis_wipes: list[float] = field(default_factory=list)
    pg_stops: list[float] = field(default_factory=list)
    redis_down_s: float = 1.0
    pg_down_s: float = 60.0
    settle_timeout_s: float = 300.0


@dataclass
class Report:
    """Counts and figures of one run (see the module docstring)."""

    sent: int = 0
    stored: int = 0
    stored_duplicates: int = 0
    acked_not_stored: int = 0  # the pre-spool window: the sandbox was told "received", nothing was stored
    unacked_at_kills: int = 0  # delivered to a connector and not yet acknowledged when it was killed
    replies_expected: int = 0
    replies_delivered: int = 0
    reply_duplicates: int = 0
    replies_unexpected: int = 0
    replies_failed: int = 0
    timers_due: int = 0
    timers_fired: int = 0
    timers_fired_twice: int = 0
    timers_after_reply: int = 0
    runs_live: int = 0
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
        return self.replies_expected - self.replies_delivered

    @property
    def timers_lost(self) -> int:
        return self.timers_due - self.timers_fired

    @property
    def failures(self) -> dict[str, int]:
        """Every count that must be zero, by name; empty when the run lost and duplicated nothing."""
        counts = {
            "inbound lost": self.inbound_lost, "inbound duplicated": self.stored_duplicates,
            "replies lost": self.replies_lost, "replies duplicated": self.reply_duplicates,
            "replies unexpected": self.replies_unexpected, "sends failed": self.replies_failed,
            "timers lost": self.timers_lost, "timers fired twice": self.timers_fired_twice,
            "timers fired after a reply": self.timers_after_reply, "funnel runs stuck": self.runs_live,
        }
        return {name: n for name, n in counts.items() if n}

    def _faults_line(self) -> str:
        times: dict[str, list[float]] = {}
        for at, kind in self.faults:
            times.setdefault(kind, []).append(at)
        return ", ".join(
            f"{kind} at {', '.join(f'{t:.0f}' for t in ats)} s" if len(ats) <= 3
            else f"{len(ats)} × {kind} from {ats[0]:.0f} s to {ats[-1]:.0f} s" for kind, ats in times.items()) or "none"

    def lines(self) -> list[str]:
        """The report as printed lines."""
        after = ", ".join(f"{kind} {s:.1f} s" for kind, s in sorted(self.stall_after.items())) or "no faults"
        return [
            f"inbound: {self.sent} sent, {self.stored} stored, {self.stored_duplicates} duplicates, "
            f"{self.inbound_lost} lost ({self.acked_not_stored} of them acknowledged to the sandbox: the "
            f"pre-spool window); {self.unacked_at_kills} delivered to a connector but not acknowledged when it "
            f"was killed (redelivered)",
            f"replies: {self.replies_expected} expected, {self.replies_delivered} delivered, "
            f"{self.reply_duplicates} duplicated, {self.replies_unexpected} unexpected, {self.replies_lost} lost, "
            f"{self.replies_failed} failed sends",
            f"timers: {self.timers_due} due, {self.timers_fired} fired, {self.timers_lost} lost, "
            f"{self.timers_fired_twice} fired twice, {self.timers_after_reply} fired after a reply; "
            f"funnel runs stuck: {self.runs_live}",
            f"schedulers alive at the end: {self.scheduler_processes} process(es), lock owners "
            f"{sorted(self.scheduler_lock_owners)}",
            f"longest stall with events waiting: {self.longest_stall_s:.1f} s from {self.longest_stall_at:.1f} s "
            f"(longest after each fault: {after})",
            f"stalls over 2 s: {', '.join(f'{d:.1f} s from {t:.1f} s' for t, d in self.stalls) or 'none'}",
            f"faults: {self._faults_line()}; {self.seconds:.0f} s in all",
            "verdict: " + (", ".join(f"{n} {name}" for name, n in self.failures.items()) or "nothing lost or "
                           "duplicated"),
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


def welcome_funnel(menu_timeout_s: float) -> dict:
    """The product's welcome funnel (``engine/core/examples.py``) with the menu's timeout set to
    ``menu_timeout_s``, so the timer fires within the run."""
    from engine.core.examples import welcome_funnel as example

    definition = example()
    for node in definition["nodes"]:
        if node["id"] == "menu":
            node["data"]["timeout_s"] = menu_timeout_s
    return definition


def _setup(menu_timeout_s: float) -> list[int]:
    """The workspace: the welcome funnel active, its teams, the default reply on every message the funnel does
    not take, two running sandbox numbers."""
    from tests.factories import make_actor, make_instance, make_team, make_workspace
    from workbench.services import funnels
    from workbench.services.workspace_settings import save_setting
    from workbench.store.db import session_scope
    from workbench.store.models import Instance

    ws = make_workspace("Falhas")
    admin = make_actor(ws, "admin")
    for team in ("Vendas", "Suporte"):
        make_team(ws, team)
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": DEFAULT_REPLY})
    funnel_id = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel(menu_timeout_s))
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    instances = [make_instance(ws, f"numero-{k}") for k in range(len(BUSINESS_PHONES))]
    with session_scope() as s:
        s.execute(update(Instance).values(desired_state="running"))
    return instances


@dataclass(eq=False)
class _Lead:
    """One lead's script: (not before, text, a reply it must have seen first) in order, and what it sent."""

    phone: str
    business: str
    answers: bool
    items: deque
    sent: list[str] = field(default_factory=list)  # WhatsApp ids

    def expected(self) -> Counter:
        """The replies this lead must get, by kind."""
        if self.answers:
            return Counter({WELCOME: 1, MENU: 1, ROUTED: 1})
        return Counter({WELCOME: 1, MENU: 1, TIMED_OUT: 1, DEFAULT_REPLY: len(self.sent) - 1})


def _scripts(plan: Plan, rng: random.Random) -> list[_Lead]:
    """Every lead's script: the messages spread over ``messages / rate`` seconds, leads starting in the first
    40 % of it; half of them answer the menu, half stay silent until the timeout."""
    seconds = plan.messages / plan.rate
    leads = []
    for j in range(plan.leads):
        count = plan.messages // plan.leads + (1 if j < plan.messages % plan.leads else 0)
        begin = j / plan.leads * seconds * 0.4
        answers = (j // 2) % 2 == 0
        items = deque([(begin, "oi", None)])
        if answers:
            items.append((begin + 0.5, "1", MENU))
        later = sorted(rng.uniform(begin + 1, seconds) for _ in range(count - len(items)))
        for k, at in enumerate(later):
            items.append((at, f"mensagem {k}", TIMED_OUT if not answers and k == 0 else None))
        leads.append(_Lead(f"55219{j:08d}", BUSINESS_PHONES[j % len(BUSINESS_PHONES)], answers, items))
    return leads


def _kind(body: str) -> str | None:
    if body == DEFAULT_REPLY:
        return DEFAULT_REPLY
    return next((kind for kind in KINDS if body.startswith(kind)), None)


def _received(client, leads: list[_Lead]) -> list[Counter]:
    """What each lead's phone shows from the business, by kind (None: a text the script does not expect)."""
    from connector.sandbox import CHAT, MESSAGES

    with client.pipeline(transaction=False) as pipe:
        for lead in leads:
            pipe.lrange(CHAT.format(lead.phone, lead.business), 0, -1)
        id_lists = pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for lead, ids in zip(leads, id_lists, strict=True):
            if ids:
                pipe.hmget(MESSAGES.format(lead.phone, lead.business), ids)
        bodies = iter(pipe.execute())
    counts = []
    for ids in id_lists:
        seen: Counter = Counter()
        for raw in (next(bodies) if ids else []):
            message = json.loads(raw)
            if message["direction"] == "from_business":
                seen[_kind(message.get("text") or "")] += 1
        counts.append(seen)
    return counts


def _acked_ids(client) -> dict[str, bool]:
    """Every lead message the sandbox holds for the business numbers: WhatsApp id -> whether the connector
    acknowledged it (told the network it was received)."""
    from connector.sandbox import INBOX, INBOX_GROUP

    acked = {}
    for phone in BUSINESS_PHONES:
        inbox = INBOX.format(phone)
        pending = {entry["message_id"] for entry in client.xpending_range(inbox, INBOX_GROUP, "-", "+", 10**7)}
        for entry_id, fields in client.xrange(inbox):
            payload = json.loads(fields[b"p"])
            if payload.get("kind") == "message":
                acked[payload["id"]] = entry_id not in pending
    return acked


def run(plan: Plan, work_dir: Path, log_path: Path | None = None) -> Report:
    """Run ``plan`` on an embedded PostgreSQL and Redis of its own under ``work_dir`` (keep it short: the
    Redis socket's path is limited); returns the counts."""
    import pgserver

    from connector.contracts import STATUS_HASH
    from connector.sandbox import SandboxNetwork
    from workbench.store.embedded import EmbeddedPostgres, EmbeddedRedis
    from workbench.store.migrations import upgrade_database

    work_dir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(work_dir / "p")
    database_url = pg.start()
    upgrade_database(database_url)
    redis_server = EmbeddedRedis(work_dir / "r")
    redis_url = redis_server.start()
    up: subprocess.Popen | None = None
    report = Report()
    try:
        with product_env(database_url, redis_url, work_dir / "data", plan.workers) as env:
            from workbench.store.bus import get_redis

            instances = _setup(plan.menu_timeout_s)
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
            # the running server object (pgserver keeps one per data dir): stopped and started for an outage
            postgres = pgserver.get_server((work_dir / "p" / "pg").resolve(), cleanup_mode=None)
            report = _drive(plan, up, network, redis_server, postgres, create_engine(database_url))
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
        pg.stop()
        shutil.rmtree(work_dir / "r", ignore_errors=True)
        shutil.rmtree(work_dir / "p", ignore_errors=True)
    return report


def _drive(plan: Plan, up: subprocess.Popen, network, redis_server, postgres, engine) -> Report:
    """Send the leads' scripts, cause the faults, wait for the product to settle, and count."""
    from pgserver._commands import pg_ctl

    from connector.sandbox import INBOX, INBOX_GROUP

    rng = random.Random(7)
    leads = _scripts(plan, rng)
    client = network.redis
    sent = [0]
    meter = _StallMeter(engine, lambda: sent[0])
    faults = sorted([(t, "worker kill") for t in plan.worker_kills]
                    + [(t, "connector kill") for t in plan.connector_kills]
                    + [(t, "Redis restart") for t in plan.redis_restarts]
                    + [(t, "Redis emptied") for t in plan.redis_wipes]
                    + [(t, "PostgreSQL stop") for t in plan.pg_stops])
    report = Report(faults=faults)
    meter.start()
    start = time.monotonic()

    def cause(kind: str) -> None:
        if kind in ("worker kill", "connector kill"):
            victims = _descendants(up, "workbench worker" if kind == "worker kill" else "connector run")
            if victims:
                rng.choice(victims).kill()
            if kind == "connector kill":
                with contextlib.suppress(Exception):  # what the dead connector had in hand, unacknowledged
                    report.unacked_at_kills += sum(client.xpending(INBOX.format(phone), INBOX_GROUP)["pending"]
                                                   for phone in BUSINESS_PHONES)
        elif kind == "PostgreSQL stop":
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=postgres.pgdata, user=postgres.system_user)
            time.sleep(plan.pg_down_s)
            postgres.ensure_postgres_running()
        else:
            if kind == "Redis emptied":
                while True:  # a Redis restart may be under way
                    try:
                        client.eval(_WIPE, 0, SANDBOX_PREFIX)
                        break
                    except Exception:  # noqa: BLE001 - Redis restarting
                        time.sleep(0.1)
            redis_server.stop()
            time.sleep(plan.redis_down_s)
            redis_server.start()

    def fault_loop() -> None:
        # each fault in a thread of its own: workers are still killed while PostgreSQL is down
        causes = []
        for at, kind in faults:
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            causes.append(threading.Thread(target=cause, args=(kind,), daemon=True))
            causes[-1].start()
        for thread in causes:
            thread.join()

    faulter = threading.Thread(target=fault_loop, daemon=True)
    faulter.start()
    _send_scripts(plan, leads, network, start, sent)
    faulter.join()
    report.sent = sent[0]

    def settled() -> bool:
        seen = _received(client, leads)
        missing = (report.sent - meter.stored, sum(
            sum((lead.expected() - got).values()) for lead, got in zip(leads, seen, strict=True)))
        if os.environ.get("FAULTRUN_DEBUG"):
            print(f"{time.monotonic() - start:.0f} s: missing inbound, replies: {missing}", flush=True)
        return missing == (0, 0)

    with contextlib.suppress(TimeoutError):
        _wait(settled, plan.settle_timeout_s, "the product to settle")
    time.sleep(3)  # anything sent twice arrives within this
    meter.stop.set()
    meter.join()
    report.seconds = time.monotonic() - start
    _count(report, leads, client, engine)
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


def _send_scripts(plan: Plan, leads: list[_Lead], network, start: float, sent: list[int]) -> None:
    """Play the scripts: each lead's next message goes at its time, once the reply it waits for is on its
    phone. Gives up on leads still waiting ``settle_timeout_s`` after the last planned message."""
    give_up = start + plan.messages / plan.rate + plan.settle_timeout_s
    waiting: list[_Lead] = []
    checked = 0.0
    while any(lead.items for lead in leads) and time.monotonic() < give_up:
        now = time.monotonic() - start
        if waiting and now - checked >= 0.5:
            checked = now
            with contextlib.suppress(Exception):  # Redis restarting: look again next time
                for lead, got in zip(list(waiting), _received(network.redis, waiting), strict=True):
                    if got[lead.items[0][2]]:
                        waiting.remove(lead)
                        lead.items[0] = (lead.items[0][0], lead.items[0][1], None)
        due = [lead for lead in leads if lead.items and lead.items[0][0] <= now and lead not in waiting]
        for lead in sorted(due, key=lambda lead: lead.items[0][0]):
            _, body, gate = lead.items[0]
            if gate is not None:
                waiting.append(lead)
                continue
            while True:  # WhatsApp holds a lead's message while the number is away; the sandbox lives in Redis
                try:
                    lead.sent.append(network.send_from_lead(lead.phone, lead.business, text=body))
                    break
                except Exception:  # noqa: BLE001 - Redis restarting
                    time.sleep(0.05)
            lead.items.popleft()
            sent[0] += 1
        time.sleep(0.01)


def _count(report: Report, leads: list[_Lead], client, engine) -> None:
    """Fill ``report``'s counts from the leads' phones, the sandbox's inboxes and the database."""
    for lead, got in zip(leads, _received(client, leads), strict=True):
        expected = lead.expected()
        report.replies_expected += sum(expected.values())
        report.replies_delivered += sum((expected & got).values())
        report.reply_duplicates += sum(max(0, got[kind] - n) for kind, n in expected.items())
        unexpected = {kind: n for kind, n in got.items() if kind not in expected}
        if lead.answers:
            report.timers_after_reply += unexpected.pop(TIMED_OUT, 0)
        else:
            report.timers_due += 1
            report.timers_fired += min(1, got[TIMED_OUT])
            report.timers_fired_twice += max(0, got[TIMED_OUT] - 1)
        report.replies_unexpected += sum(unexpected.values())
    with engine.connect() as conn:
        stored = Counter(wa_id for (wa_id,) in conn.execute(text(
            "SELECT wa_id FROM messages WHERE direction = 'in'")))
        report.replies_failed = conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'failed'")).scalar()
        report.runs_live = conn.execute(text(
            "SELECT count(*) FROM funnel_runs WHERE status IN ('active', 'waiting', 'paused')")).scalar()
    sent_ids = {wa_id for lead in leads for wa_id in lead.sent}
    report.stored = len(sent_ids & set(stored))
    report.stored_duplicates = sum(n - 1 for n in stored.values())
    acked = _acked_ids(client)
    report.acked_not_stored = sum(1 for wa_id in sent_ids - set(stored) if acked.get(wa_id))
