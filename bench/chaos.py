"""Chaos benchmark: the product's own processes (``up --only workers --only connectors``) under faults.

Full size by default: 10,000 inbound messages at 50 msgs/s from 500 leads over two sandbox numbers, two
workers, the welcome funnel active (``engine/core/examples.py``: a welcome and the menu for each new lead, and
the menu's timeout, here 120 s). Half the leads answer the menu ("Perfeito! ..." and the bot pauses), half stay
silent until the timeout's message and then go on chatting (each further message answered by the default
reply), so every reply a lead must get is known (``tests/faultrun.py``). Scenarios, each on a fresh embedded
PostgreSQL and Redis:

- everything: a worker SIGKILLed every 5 s, a connector SIGKILLed once, Redis restarted once (keeping its
  data), PostgreSQL stopped for 60 s;
- Redis lost its data: workers SIGKILLed every 5 s, PostgreSQL stopped for 60 s so events pile up in Redis,
  and Redis restarted empty halfway through the outage (the connectors' journals and the outbox rows must bring
  back everything not yet stored).

Each prints: inbound sent / stored / duplicates / lost (and how many lost ones the sandbox was told were
received: the pre-spool window), replies expected / delivered / duplicated / unexpected / lost, timers due /
fired / lost / fired twice / fired after a reply, funnel runs stuck, and the longest stall with events
waiting. Exits 1 when any scenario lost or duplicated anything.

    python bench/chaos.py                          # both scenarios at full size (about 12 minutes)
    python bench/chaos.py --messages 2000 --leads 100 --pg-down 20 --menu-timeout 60   # quicker
    python bench/chaos.py --only "lost its data"
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import faultrun  # noqa: E402


def _scenarios(args) -> list[tuple[str, faultrun.Plan]]:
    seconds = args.messages / args.rate
    kills = [float(t) for t in range(5, int(seconds), 5)]

    def plan(**faults) -> faultrun.Plan:
        return faultrun.Plan(messages=args.messages, rate=args.rate, leads=args.leads,
                             menu_timeout_s=args.menu_timeout, workers=args.workers, pg_down_s=args.pg_down,
                             settle_timeout_s=args.settle, worker_kills=kills, **faults)

    return [
        ("everything: worker kills, a connector kill, a Redis restart, PostgreSQL stopped",
         plan(connector_kills=[seconds * 0.2], redis_restarts=[seconds * 0.35], pg_stops=[seconds * 0.5])),
        ("Redis lost its data (restarted empty while PostgreSQL was stopped), worker kills",
         plan(pg_stops=[seconds * 0.3], redis_wipes=[seconds * 0.3 + args.pg_down / 2])),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="msgs/s")
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-down", type=float, default=60.0, help="seconds PostgreSQL stays stopped")
    parser.add_argument("--menu-timeout", type=float, default=120.0,
                        help="the menu's timeout in seconds; keep it longer than the outage and its backlog")
    parser.add_argument("--settle", type=float, default=600.0, help="most seconds to wait for the product")
    parser.add_argument("--only", help="run only scenarios whose name contains this text")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="wbchaos-"))
    failed = []
    try:
        for k, (name, plan) in enumerate(_scenarios(args)):
            if args.only and args.only not in name:
                continue
            work = Path(f"/tmp/wbc-{uuid.uuid4().hex[:6]}")  # short: the Redis socket path is limited
            try:
                report = faultrun.run(plan, work, log_path=logs / f"{k}-up.log")
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(f"\n{name} — {plan.messages} messages at {plan.rate:.0f}/s from {plan.leads} leads over "
                  f"{len(faultrun.BUSINESS_PHONES)} numbers, welcome funnel, {plan.workers} workers", flush=True)
            for line in report.lines():
                print(f"  {line}", flush=True)
            if report.failures:
                failed.append(name)
    finally:
        print(f"\nlogs of the product's processes: {logs}")
    if failed:
        print(f"FAILED: {'; '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
