"""AI benchmark: do contacts waiting for a slow model hold back the other contacts of the same number?

One number, two groups of leads. *Plain* leads (``--plain-leads``, 50) send messages at ``--rate`` per second in
total and get the workspace's default reply (no model involved). *AI* leads (``--ai-leads``, 50) are in a
"Perguntar à IA" step whose provider — a real local OpenAI-compatible server (``tests/fake_llm.py``) — answers
after ``--model-delay`` seconds (2 s); each AI lead writes again as soon as the step answered it, so there are
always about 50 turns wanting the model.

Printed, in the same run: the plain replies' p50/p99 latency (inbound event published -> answer's command in the
number's outbound stream) **without** the AI leads (the baseline) and **with** them, for each calls-pool size in
``--concurrency``; and the AI turns per second next to what that pool size allows (``concurrency / model delay``).
The target: plain replies within 20 ms of the baseline. Figures, not pass/fail.

Processes: 2 RQ workers (inbound + default queues, ``python -m workbench worker``) and the calls pool
(``python -m workbench calls``), as ``python -m workbench workers`` runs them; no connector (events are published
to the number's inbound stream as a connector would).

    python bench/ai.py                                   # embedded servers in a temp dir
    DATABASE_URL=... REDIS_URL=... python bench/ai.py --seconds 20 --concurrency 8,50
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.pipeline import OutWatcher, with_product_servers  # noqa: E402

PLAIN_REPLY = "Recebido, já respondo!"
_FAKE = """
import sys, time
sys.path.insert(0, ".")
from tests.fake_llm import FakeLLM
fake = FakeLLM(default={{"text": "Certo! E qual é o seu nome?", "delay": {delay}}})
print(fake.url, flush=True)
while True:
    time.sleep(3600)
"""


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def _spawn(children: list[subprocess.Popen], env: dict[str, str], *argv: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    children.append(proc)
    return proc


def _ai_funnel() -> dict:
    return {"nodes": [
        {"id": "inicio", "type": "trigger", "data": {"kind": "keyword", "mode": "contains", "words": ["robo"]}},
        {"id": "ia", "type": "ai_reply", "data": {
            "prompt": "Converse com o contato.", "max_turns": 30, "call_limit_s": 120,
            "fields": [{"key": "nome", "type": "text", "required": True, "save_to": "contact.name"}]}},
        {"id": "fim", "type": "end", "data": {}},
    ], "edges": [{"id": "e1", "source": "inicio", "target": "ia", "label": "next"},
                 {"id": "e2", "source": "ia", "target": "fim", "label": "qualificado"}]}


class Scenario:
    """Plain leads paced at ``rate``; optionally AI leads in a closed loop. Returns latencies and AI turns."""

    def __init__(self, client, instance_id: int, watcher: OutWatcher, tag: str) -> None:
        self.client, self.instance_id, self.watcher, self.tag = client, instance_id, watcher, tag

    def publish(self, phone: str, text: str) -> None:
        from connector.contracts import now_ms, publish_inbound
        from tests.factories import inbound

        publish_inbound(self.client, inbound(self.instance_id, phone=phone, text=text, timestamp_ms=now_ms()))

    def run(self, seconds: float, rate: float, plain_leads: int, ai_leads: int,
            warm_turns: int = 0) -> tuple[list[float], int, float]:
        plain = [f"55219{self.tag}{k:05d}" for k in range(plain_leads)]
        ai = [f"55229{self.tag}{k:05d}" for k in range(ai_leads)]
        stop = threading.Event()
        turns = 0
        if ai:
            for phone in ai:
                self.publish(phone, "oi, quero falar com o robo")
            counts = {phone: 0 for phone in ai}

            def loop() -> None:
                nonlocal turns
                while not stop.is_set():
                    for phone in ai:
                        seen = len(self.watcher.seen.get(phone, []))
                        if seen > counts[phone]:
                            turns += seen - counts[phone]
                            counts[phone] = seen
                            self.publish(phone, f"resposta {seen}")
                    time.sleep(0.01)

            threading.Thread(target=loop, daemon=True).start()
            # measure once the pool is warm: the first turns answered (the pool imported the SDK, connected)
            deadline = time.perf_counter() + 120
            while turns < min(len(ai), warm_turns) and time.perf_counter() < deadline:
                time.sleep(0.05)
        sent: dict[str, list[float]] = {}
        start = time.perf_counter()
        total = int(seconds * rate)
        turns_before, window_start = turns, time.perf_counter()
        for k in range(total):
            target = start + k / rate
            while (delay := target - time.perf_counter()) > 0:
                time.sleep(min(delay, 0.002))
            phone = plain[k % len(plain)]
            sent.setdefault(phone, []).append(time.perf_counter())
            self.publish(phone, f"mensagem {k}")
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and any(
                len(self.watcher.seen.get(p, [])) < len(ts) for p, ts in sent.items()):
            time.sleep(0.02)
        window = time.perf_counter() - window_start
        window_turns = turns - turns_before
        stop.set()
        latencies = [(answer - send) * 1000 for phone, sends in sent.items()
                     for send, answer in zip(sends, self.watcher.seen.get(phone, []), strict=False)]
        return latencies, window_turns, window


def _quiet(timeout: float) -> None:
    """Wait until no outside call is pending or running."""
    from sqlalchemy import func, select

    from workbench.store.db import session_scope
    from workbench.store.models import OutsideCall

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            if not session.scalar(select(func.count()).select_from(OutsideCall).where(
                    OutsideCall.status.in_(("pending", "running")))):
                return
        time.sleep(0.2)


def _diag() -> None:
    """Where a turn's time goes (BENCH_AI_DIAG=1): queue wait, the call, applying, and the gap to the next turn."""
    from sqlalchemy import text

    from workbench.store.db import session_scope

    with session_scope() as session:
        row = session.execute(text("""
            SELECT count(*), avg(extract(epoch FROM started_at - created_at)),
                   avg(extract(epoch FROM finished_at - started_at)), avg(extract(epoch FROM applied_at - finished_at)),
                   avg(extract(epoch FROM next_created - applied_at))
            FROM (SELECT *, lead(created_at) OVER (PARTITION BY run_id ORDER BY id) AS next_created
                  FROM outside_calls WHERE applied_at IS NOT NULL) c""")).one()
    print(f"  diag: {row[0]} turns; queued {row[1] or 0:.2f} s, call {row[2] or 0:.2f} s, apply {row[3] or 0:.3f} s,"
          f" applied -> next turn stored {row[4] or 0:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15, help="length of each measured window")
    parser.add_argument("--rate", type=float, default=20, help="plain messages per second (all plain leads)")
    parser.add_argument("--plain-leads", type=int, default=50)
    parser.add_argument("--ai-leads", type=int, default=50)
    parser.add_argument("--model-delay", type=float, default=2.0, help="seconds the fake provider takes")
    parser.add_argument("--concurrency", default="8,50", help="calls-pool sizes to run, comma-separated")
    args = parser.parse_args()

    with_product_servers("wbbench-ai-", {"WORKBENCH_DRAIN_LINGER_MS": "2000"}, lambda children: _run(args, children))


def _run(args, children: list[subprocess.Popen]) -> None:
    from connector.contracts import OUT_STREAM
    from tests.factories import make_actor, make_instance, make_workspace
    from workbench.services import ai_client, funnels
    from workbench.services.workspace_settings import save_setting
    from workbench.store.bus import get_redis
    from workbench.store.db import session_scope
    from workbench.store.migrations import upgrade_database

    upgrade_database(os.environ["DATABASE_URL"])
    client = get_redis()
    client.flushdb()
    # the provider runs in a process of its own, as a real one would: its threads must not slow the measuring
    fake = subprocess.Popen([sys.executable, "-c", _FAKE.format(delay=args.model_delay)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    children.append(fake)
    fake_url = fake.stdout.readline().strip()
    ws = make_workspace("Bench IA")
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": PLAIN_REPLY})
    with session_scope() as session:
        ai_client.save_provider(session, ws, "Fake", base_url=fake_url, model="fake", api_key="sk-bench",
                                is_default=True, timeout_s=30)
    funnel_id = funnels.create_funnel(admin, "IA", _ai_funnel())
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    instance_id = make_instance(ws, "bench")
    watcher = OutWatcher(client, [OUT_STREAM.format(instance_id)])
    watcher.start()

    env = dict(os.environ)
    for _ in range(2):
        _spawn(children, env, "-m", "workbench", "worker")
    time.sleep(3)  # workers import the engine and connect

    rows = []
    scenario = Scenario(client, instance_id, watcher, "0")
    base, _, _ = scenario.run(args.seconds, args.rate, args.plain_leads, 0)
    rows.append(("plain only (baseline)", base, None, None, None, None))
    for n, size in enumerate(int(x) for x in args.concurrency.split(",")):
        pool = _spawn(children, {**env, "WORKBENCH_OUTSIDE_CALLS_CONCURRENCY": str(size)}, "-m", "workbench", "calls")
        time.sleep(2)
        cpu = psutil.Process(pool.pid)
        before = sum(cpu.cpu_times()[:2])
        with_ai, turns, window = Scenario(client, instance_id, watcher, str(n + 1)).run(
            args.seconds, args.rate, args.plain_leads, args.ai_leads, warm_turns=2 * size)
        _quiet(120)  # the turns in flight finish, so the next pool size starts from an empty queue
        used = sum(cpu.cpu_times()[:2]) - before
        rows.append((f"plain + {args.ai_leads} AI leads, pool {size}", with_ai, turns / window, size,
                     size / args.model_delay, used))
        if os.environ.get("BENCH_AI_DIAG"):
            _diag()
        pool.terminate()
        pool.wait(60)
        children.remove(pool)

    print(f"\nAI benchmark — one number; {args.plain_leads} plain leads at {args.rate:.0f} msgs/s for "
          f"{args.seconds:.0f} s; {args.ai_leads} AI leads in a closed loop; model answers in "
          f"{args.model_delay:.1f} s; 2 RQ workers; {os.cpu_count()} CPUs")
    base_p50, base_p99 = statistics.median(base), _pct(base, 0.99)
    for name, lat, rate, size, ceiling, used in rows:
        p50, p99 = statistics.median(lat) if lat else float("nan"), _pct(lat, 0.99)
        line = f"{name:<34} plain replies p50 {p50:>7.1f} ms  p99 {p99:>7.1f} ms  ({len(lat)} answered)"
        if rate is not None:
            line += (f"  Δp50 {p50 - base_p50:+.1f} ms Δp99 {p99 - base_p99:+.1f} ms;"
                     f"  AI turns {rate:>5.1f}/s (pool {size} allows ≤ {ceiling:.1f}/s;"
                     f" calls process CPU {used:.1f} s)")
        print(line)


if __name__ == "__main__":
    main()
