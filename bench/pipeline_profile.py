"""Where a message's time goes: statements, round trips and a profile of the worker's drain, per message.

Leads send ``--messages`` messages through the sandbox connector while no worker runs; once they all wait in the
number's inbound stream the connector stops and this process drains them itself (``drain_inbound``, the job a
worker runs) under cProfile, counting

- SQL statements (at the driver, ``tests/sql_count.py``) and transactions (SQLAlchemy's commit event),
- Redis commands (the server's ``INFO commandstats`` before and after) and Redis round trips (requests this
  process sent; a pipeline is one),

for the send phase (sandbox lead + connector) and for the drain. ``--batch 1`` drains one message per
transaction, as under a light, paced flow; the default is the product's batch size, as under a burst.
``--funnel`` makes every message come from a new lead with the welcome funnel active (two messages and a timer
per lead).

    python bench/pipeline_profile.py --messages 1000 [--batch 1] [--funnel] [--top 25] [--no-profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.pipeline import _spawn, _wait, commandstats, with_product_servers  # noqa: E402

BUSINESS_PHONE = "5511900000001"


def _commandstats(client) -> Counter:
    return Counter(commandstats(client))


def _per_message(counts: Counter, n: int, skip: tuple[str, ...] = ("info", "config|resetstat")) -> str:
    total = sum(v for k, v in counts.items() if k not in skip)
    top = ", ".join(f"{k} {v / n:.2f}" for k, v in counts.most_common() if k not in skip and v / n >= 0.01)
    return f"{total / n:.2f} per message ({top})"


def _run(args, children) -> None:
    import redis.connection
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from connector.contracts import IN_STREAM, STATUS_HASH, drain_unit
    from connector.sandbox import SandboxNetwork
    from engine.core.examples import welcome_funnel
    from engine.worker.jobs import drain_inbound
    from tests.factories import make_actor, make_instance, make_workspace
    from tests.sql_count import statements_run
    from workbench.services import funnels
    from workbench.services.workspace_settings import save_setting
    from workbench.store.bus import get_redis
    from workbench.store.migrations import upgrade_database

    upgrade_database(os.environ["DATABASE_URL"])
    client = get_redis()
    client.flushdb()
    ws = make_workspace("Bench")
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Recebido, já respondo!"})
    if args.funnel:
        funnel_id = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel())
        funnels.publish(admin, funnel_id)
        funnels.set_active(admin, funnel_id, True)
    instance_id = make_instance(ws, "bench")
    network = SandboxNetwork(client)
    connector = _spawn(children, "-m", "connector", "run", "--instance", str(instance_id), "--transport", "sandbox")
    _wait(lambda: client.hget(STATUS_HASH.format(instance_id), "qr"), what="QR")
    network.scan(client.hget(STATUS_HASH.format(instance_id), "qr").decode(), BUSINESS_PHONE)
    _wait(lambda: client.hget(STATUS_HASH.format(instance_id), "state") == b"connected", what="connect")
    client.delete("rq:queue:inbound")  # the connector's state change queued a drain; this process drains

    n = args.messages
    stream = IN_STREAM.format(drain_unit(instance_id, 0))  # one lane (WORKBENCH_INBOUND_LANES=1): one stream
    before = _commandstats(client)
    base = client.xlen(stream)
    for k in range(n):
        lead = f"55229{k:08d}" if args.funnel else f"55219{k % 50:08d}"
        network.send_from_lead(lead, BUSINESS_PHONE, text=f"mensagem {k}")
    _wait(lambda: client.xlen(stream) >= base + n, what="events in the stream")
    sent = _commandstats(client) - before
    connector.terminate()
    connector.wait(10)
    children.remove(connector)
    client.delete("rq:queue:inbound")

    statements: Counter = Counter()

    @event.listens_for(Engine, "commit")
    def _commit(conn) -> None:
        statements["(commit)"] += 1

    trips = Counter()
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        trips["requests"] += 1
        return send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted
    before = _commandstats(client)
    trips.clear()
    me = psutil.Process()
    rss_before = me.memory_info().rss
    profile = cProfile.Profile()
    began, cpu_began = time.perf_counter(), time.process_time()
    with statements_run() as run:
        if not args.no_profile:
            profile.enable()
        while client.xlen(stream):
            drain_inbound(instance_id, 0)
        profile.disable()
    statements.update(statement.split(None, 1)[0].upper() for statement in run)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    redis.connection.AbstractConnection.send_packed_command = send
    drained = _commandstats(client) - before

    print(f"\n{n} messages, batch {os.environ['WORKBENCH_INBOUND_BATCH']}, "
          f"{'welcome funnel, new leads' if args.funnel else 'default reply, 50 leads'}; "
          f"drain {seconds:.2f} s in this process ({n / seconds:.0f} msgs/s, "
          f"profiler {'off' if args.no_profile else 'on'}), its CPU {cpu * 1e6 / n:.0f} µs per message")
    print(f"send phase (sandbox lead + connector), Redis commands: {_per_message(sent, n)}")
    print(f"drain, SQL: {_per_message(statements, n)}")
    print(f"drain, Redis commands: {_per_message(drained, n)}")
    print(f"drain, Redis round trips: {trips['requests'] / n:.2f} per message")
    print(f"drain, this process's RSS: {rss_before / 2**20:.0f} MB before, {me.memory_info().rss / 2**20:.0f} MB after")
    if args.no_profile:
        return
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    if args.save:
        stats.dump_stats(args.save)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200, help="events per transaction at most")
    parser.add_argument("--funnel", action="store_true", help="new leads with the welcome funnel active")
    parser.add_argument("--top", type=int, default=25, help="functions listed per profile ordering")
    parser.add_argument("--save", help="also write the profile to this file (for pstats: callers, callees)")
    parser.add_argument("--no-profile", action="store_true", help="no cProfile: the drain's own time and CPU only")
    args = parser.parse_args()
    with_product_servers("wbprof-", {"WORKBENCH_INBOUND_BATCH": str(args.batch), "WORKBENCH_DRAIN_LINGER_MS": "0",
                                    "WORKBENCH_INBOUND_LANES": "1"},
                         lambda children: _run(args, children))


if __name__ == "__main__":
    main()
