"""Chaos benchmark: the product's own processes (``up --only workers --only connectors``) under faults.

Full size by default: 3,000 messages at 50 msgs/s from 300 leads over two sandbox numbers, two workers, the
default reply on every message, and 100 leads through a funnel with a delay and a reply timeout. Scenarios,
each on a fresh database and Redis (``tests/faultrun.py`` runs them and counts):

- baseline: no faults (the stall figure a healthy run shows),
- worker kills: a worker SIGKILLed every 5 s,
- Redis restart: ``EmbeddedRedis.stop()`` then ``start()`` once, mid-run,
- everything: worker kills every 5 s, a connector SIGKILLed once and a Redis restart once.

Each prints inbound lost/duplicated, replies lost/duplicated, timers due/fired/fired twice, schedulers alive at
the end, and the longest stall with events waiting (overall and after each kind of fault). Figures, not
pass/fail.

    python bench/chaos.py                       # embedded PostgreSQL in a temp dir
    python bench/chaos.py --messages 500        # quicker
    DATABASE_URL=postgresql+psycopg://... python bench/chaos.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import faultrun  # noqa: E402
from tests.factories import fresh_database  # noqa: E402
from workbench.store.migrations import upgrade_database  # noqa: E402


def _scenarios(args) -> list[tuple[str, faultrun.Plan]]:
    seconds = args.messages / args.rate
    kills = [float(t) for t in range(5, int(seconds), 5)]

    def plan(**faults) -> faultrun.Plan:
        return faultrun.Plan(messages=args.messages, rate=args.rate, leads=args.leads,
                             funnel_leads=args.funnel_leads, workers=args.workers, **faults)

    return [
        ("baseline, no faults", plan()),
        ("a worker SIGKILLed every 5 s", plan(worker_kills=kills)),
        ("Redis restarted once", plan(redis_restarts=[seconds / 2])),
        ("everything: worker kills, a connector kill, a Redis restart",
         plan(worker_kills=kills, connector_kills=[seconds * 0.3], redis_restarts=[seconds * 0.6])),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=50.0, help="msgs/s")
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--funnel-leads", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", help="run only scenarios whose name contains this text")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wbchaos-"))
    stops = []
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        from workbench.store.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(tmp)
        server_url = pg.start()
        stops.append(pg.stop)
    try:
        for name, plan in _scenarios(args):
            if args.only and args.only not in name:
                continue
            database_url, drop = fresh_database(server_url)
            upgrade_database(database_url)
            work = Path(f"/tmp/wbc-{uuid.uuid4().hex[:6]}")  # short: the Redis socket path is limited
            try:
                report = faultrun.run(plan, database_url, work, log_path=tmp / f"{len(os.listdir(tmp))}-up.log")
            finally:
                drop()
                shutil.rmtree(work, ignore_errors=True)
            print(f"\n{name} — {plan.messages} messages at {plan.rate:.0f}/s from {plan.leads} leads, "
                  f"{plan.funnel_leads} through the timer funnel, {plan.workers} workers", flush=True)
            for line in report.lines():
                print(f"  {line}", flush=True)
    finally:
        for stop in stops:
            stop()
        print(f"\nlogs of the product's processes: {tmp}")


if __name__ == "__main__":
    main()
