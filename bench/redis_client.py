"""What the Redis client costs per command, next to a bare round trip on a socket (the floor), in one run.

Every message crosses Redis a dozen times or more (connector, drain, outbox, receipts), so the client library's
own CPU per command is a visible share of the product's CPU per message on a small machine; this measures it for
the installed redis-py, in the configurations the product uses: the connectors' blocking pool, the workers'
pool, and a 5-command pipeline. CPU time of this process only (the server's is the same for all).

    python bench/redis_client.py                 # embedded Redis in a temp dir
    REDIS_URL=redis://127.0.0.1:6379/15 python bench/redis_client.py
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

COMMANDS = 20_000
ROUNDS = 5


def cpu_us(call, n: int) -> float:
    """Median over ROUNDS of this process's CPU µs per call of ``call()``."""
    samples = []
    for _ in range(ROUNDS):
        began = time.process_time()
        for _ in range(n):
            call()
        samples.append((time.process_time() - began) / n * 1e6)
    return statistics.median(samples)


def _raw_socket(client: redis.Redis):
    """A GET as bytes on a plain socket of the same server: what any client pays (two system calls)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(kwargs["path"])
    else:
        sock = socket.create_connection((kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)))
    db = str(kwargs.get("db", 0))
    sock.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(db)}\r\n{db}\r\n".encode())
    sock.recv(64)
    request = b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n"

    def get() -> None:
        sock.sendall(request)
        sock.recv(64)
    return get


def run(url: str) -> None:
    """Print the CPU per command of each configuration and its multiple of the raw round trip."""
    blocking = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url, max_connections=16, timeout=20, health_check_interval=30))
    pooled = redis.Redis.from_url(url, health_check_interval=30)
    pooled.set("x", "1")
    pipe = pooled.pipeline(transaction=False)

    def pipelined() -> None:
        for _ in range(5):
            pipe.get("x")
        pipe.execute()

    floor = cpu_us(_raw_socket(pooled), COMMANDS)
    rows = [("raw socket round trip (floor)", floor),
            ("GET, blocking pool (connectors)", cpu_us(lambda: blocking.get("x"), COMMANDS)),
            ("GET, pool (workers, panel)", cpu_us(lambda: pooled.get("x"), COMMANDS)),
            ("5 GETs in one pipeline", cpu_us(pipelined, COMMANDS // 5))]
    print(f"redis-py {redis.__version__}, hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}; "
          f"CPU µs of this process, median of {ROUNDS} rounds")
    print_against_floor(rows)


def print_against_floor(rows: list[tuple[str, float]]) -> None:
    """One line per (name, µs) row, with its multiple of the first row's figure (the floor)."""
    floor = rows[0][1]
    for name, us in rows:
        print(f"{name:<38} {us:7.1f} µs   {us / floor:4.1f}x floor")


def main() -> None:
    url = os.environ.get("REDIS_URL")
    if url:
        run(url)
        return
    from workbench.store.embedded import EmbeddedRedis

    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="wbr-")))
    try:
        run(server.start())
    finally:
        server.stop()


if __name__ == "__main__":
    main()
