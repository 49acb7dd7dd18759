"""AI client benchmark: what ``workbench.services.ai_client.chat`` adds to a model call, and its concurrency limit.

Against the local OpenAI-compatible server of the tests (``tests/fake_llm.py``, answering at once), times
``--calls`` calls (default 300) one after the other:

- baseline: the bare OpenAI SDK call (``client.chat.completions.create``) with the same client;
- ``chat``: the product's call — provider and settings read, budget sum, Redis slot, usage row written.

Then ``--threads`` threads (default 16) make calls to a server answering after ``--delay`` seconds (default 0.2)
with the workspace's *Máximo de chamadas de IA ao mesmo tempo* at ``--limit`` (default 4): prints calls/s next to
the ideal ``limit / delay`` and the most calls the server saw at once (must not exceed the limit).

    python bench/ai_client.py                     # embedded PostgreSQL and Redis in a temp dir
    DATABASE_URL=postgresql+psycopg://... REDIS_URL=redis://.../15 python bench/ai_client.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MESSAGES = [{"role": "system", "content": "Seja breve."}, {"role": "user", "content": "Oi, tudo bem?"}]


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(name: str, samples: list[float]) -> str:
    return (f"{name:<44} p50 {statistics.median(samples):>7.2f} ms  p99 {_pct(samples, 0.99):>7.2f} ms  "
            f"({len(samples)} calls)")


def main() -> None:
    """Measure the sequential overhead and the bounded concurrency, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()
    from bench.pipeline import servers

    with tempfile.TemporaryDirectory(prefix="wb-ai-") as tmp:
        database_url, redis_url, stops = servers(Path(tmp))
        try:
            os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, WORKBENCH_DATA_DIR=tmp)
            from tests.factories import make_ai_provider, make_workspace
            from tests.fake_llm import FakeLLM
            from workbench.services import ai_client
            from workbench.store.config import get_settings
            from workbench.store.db import session_scope
            from workbench.store.migrations import upgrade_database
            from workbench.store.models import Setting

            get_settings.cache_clear()
            upgrade_database(database_url)
            fake = FakeLLM()
            try:
                ws = make_workspace()
                make_ai_provider(ws, fake.url, timeout_s=30)
                with session_scope() as s:
                    s.add(Setting(workspace_id=ws, key="ai", value={"max_concurrent_calls": args.limit}))
                client = ai_client.client_for(fake.url, "sk-test-secret-1234", 30)

                def bare() -> None:
                    client.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=50)

                def product() -> None:
                    with session_scope() as s:
                        ai_client.chat(s, ws, None, MESSAGES, tools=None, json_schema=None, temperature=None,
                                       max_tokens=50)

                results = {}
                for name, call in (("baseline: bare SDK call", bare), ("ai_client.chat", product)):
                    for _ in range(10):
                        call()  # warm the pools
                    samples = []
                    for _ in range(args.calls):
                        started = time.perf_counter()
                        call()
                        samples.append((time.perf_counter() - started) * 1000)
                    results[name] = samples
                    print(_line(name, samples))
                added = (statistics.median(results["ai_client.chat"])
                         - statistics.median(results["baseline: bare SDK call"]))
                print(f"{'chat adds (p50)':<44} {added:>11.2f} ms")

                fake.default = {"text": "ok", "delay": args.delay}
                fake.max_in_flight = 0
                per_thread = max(1, args.calls // (4 * args.threads))
                errors: list[Exception] = []

                def worker() -> None:
                    for _ in range(per_thread):
                        try:
                            product()
                        except Exception as exc:  # noqa: BLE001 - counted and printed
                            errors.append(exc)

                threads = [threading.Thread(target=worker) for _ in range(args.threads)]
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - started
                total = per_thread * args.threads
                print(f"{args.threads} threads, limit {args.limit}, answer after {args.delay:.2f} s: "
                      f"{(total - len(errors)) / elapsed:.1f} calls/s (ideal {args.limit / args.delay:.1f}), "
                      f"at most {fake.max_in_flight} at once, {len(errors)} refused")
            finally:
                fake.stop()
        finally:
            from workbench.store import bus, db

            db.dispose_engines()
            bus.reset_clients()
            for stop in stops:
                stop()


if __name__ == "__main__":
    main()
