"""Inbound lanes: one busy number drained by one and by two workers, with one lane and with several.

A backlog of ``--messages`` inbound messages from ``--leads`` leads to ONE number is queued (the default reply
answers every message), then drained by 1 or 2 RQ workers (``SimpleWorker``, as in production), started and
registered before the clock starts, from the wake-up of the drains to the last answer in the outbound stream.
With one lane the number is one drain unit, as before lanes: a second worker has nothing to take. With
``--lanes`` lanes the second worker drains other lanes of the same number at once. Prints msgs/s per scenario
and the two-worker ratios, measured in the same run on the same servers. Figures, not pass/fail.

    python bench/lanes.py --messages 2000 --lanes 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import _spawn, _wait, with_product_servers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="backlog per scenario")
    parser.add_argument("--leads", type=int, default=50, help="contacts writing to the number")
    parser.add_argument("--lanes", type=int, default=4, help="lanes of the number in the lanes scenarios")
    args = parser.parse_args()
    with_product_servers("wbbench-lanes-", {"WORKBENCH_DRAIN_LINGER_MS": "200"}, lambda children: _run(args, children))


def _run(args, children) -> None:
    from rq import Worker

    from connector.contracts import (
        IN_LANES_HASH,
        IN_STREAM,
        OUT_STREAM,
        drain_unit,
        encode,
        inbound_backlog,
        inbound_lanes,
        lane_of,
        wake_inbound_drain,
    )
    from tests.factories import inbound, make_actor, make_instance, make_workspace
    from workbench.services.workspace_settings import save_setting
    from workbench.store.bus import get_redis
    from workbench.store.migrations import upgrade_database

    upgrade_database(os.environ["DATABASE_URL"])
    client = get_redis()
    client.flushdb()
    ws = make_workspace("Bench lanes")
    save_setting(make_actor(ws, "admin"), "default_reply", {"enabled": True, "mode": "every", "text": "Recebido!"})
    results: dict[tuple[int, int], float] = {}
    for lanes in (1, args.lanes):
        for workers in (1, 2):
            inst = make_instance(ws, f"{lanes} lane(s), {workers} worker(s)")
            client.hdel(IN_LANES_HASH, str(inst))
            assert inbound_lanes(client, inst, lanes) == lanes  # as a connector starting with this setting
            pipe = client.pipeline(transaction=False)
            for n in range(args.messages):  # the backlog, queued while no worker runs
                event = inbound(inst, phone=f"55219{n % args.leads:08d}", text=f"m{n}")
                pipe.xadd(IN_STREAM.format(drain_unit(inst, lane_of(event, lanes))), encode(event))
            pipe.execute()
            procs = [_spawn(children, "-m", "rq.cli", "worker", "--url", os.environ["REDIS_URL"],
                            "--worker-class", "rq.worker.SimpleWorker", "--logging_level", "ERROR", "inbound")
                     for _ in range(workers)]
            _wait(lambda n=workers: Worker.count(connection=client) == n, timeout=120, what="the workers")
            began = time.monotonic()
            for lane in range(lanes):
                wake_inbound_drain(client, inst, lane)
            _wait(lambda i=inst: client.xlen(OUT_STREAM.format(i)) >= args.messages and not inbound_backlog(client, i),
                  timeout=600, what="the backlog to be answered")
            results[(lanes, workers)] = args.messages / (time.monotonic() - began)
            for proc in procs:
                proc.terminate()
                proc.wait(30)
                children.remove(proc)
            _wait(lambda: Worker.count(connection=client) == 0, timeout=60, what="the workers to leave")
            print(f"{lanes} lane(s), {workers} worker(s): {results[(lanes, workers)]:7.0f} msgs/s "
                  f"({args.messages} messages, {args.leads} leads, one number; {os.cpu_count()} CPUs)", flush=True)
    for lanes in (1, args.lanes):
        print(f"{lanes} lane(s): 2 workers / 1 worker = {results[(lanes, 2)] / results[(lanes, 1)]:.2f}x")


if __name__ == "__main__":
    main()
