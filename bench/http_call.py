"""What the "Chamada HTTP" client's safety costs: ``http_call.perform`` (SSRF guard with its own lookup, a pinned
connection, the streamed and capped body, signing, response mapping) against a plain ``httpx.post`` to the same
local server, in the same run. Also the guard alone (resolve + check) and one Standard Webhooks signature.

Prints figures; it asserts nothing.

    .venv/bin/python bench/http_call.py [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.fake_http import FakeHTTP  # noqa: E402
from workbench.services import http_call  # noqa: E402

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    server = FakeHTTP().start()
    server.script([{"status": 200, "json": {"data": {"id": 42, "nome": "Ana"}}}])
    allow = http_call.AllowList.parse("127.0.0.1/32")
    body = {"nome": "Ana", "telefone": "5511987654321", "origem": "whatsapp"}
    request = {"method": "POST", "url": server.url + "/leads", "body_kind": "json", "body": body,
               "auth": {"kind": "bearer", "secret": "token"}, "sign_secret": "assinatura", "timeout_s": 10,
               "idempotency_key": "wb-call-1", "mapping": [{"path": "data.id", "target": "vars.id"}]}
    secrets = {"token": "tok-123456789012", "assinatura": SECRET}.get
    try:
        baseline, guarded = [], []
        for _ in range(args.requests):  # alternate, so both see the same machine load
            started = time.perf_counter()
            # a new client per call, as perform does (it cannot reuse a connection across checked addresses)
            with httpx.Client() as client:
                client.post(server.url + "/leads", json=body, headers={"Authorization": "Bearer x"}).json()
            baseline.append(time.perf_counter() - started)
            started = time.perf_counter()
            http_call.perform(request, secrets, allow=allow)
            guarded.append(time.perf_counter() - started)
        print(f"{args.requests} POSTs to a local server")
        print(f"  plain httpx.Client().post           {_ms(baseline)}")
        print(f"  http_call.perform (guard, sign, map) {_ms(guarded)}")
        print(f"  overhead at p50: {(statistics.median(guarded) - statistics.median(baseline)) * 1000:.2f} ms")
        checks = []
        url = httpx.URL("http://localhost:8080/x")
        for _ in range(1000):
            started = time.perf_counter()
            http_call.checked_address(url, http_call.AllowList.parse("localhost"))
            checks.append(time.perf_counter() - started)
        print(f"  guard alone (system lookup of 'localhost' + checks): {_ms(checks)}")
        started = time.perf_counter()
        for _ in range(10_000):
            http_call.sign(SECRET, "wb-call-1", 1_700_000_000, b"x" * 1024)
        print(f"  one signature of a 1 KB body: {(time.perf_counter() - started) / 10_000 * 1e6:.1f} µs")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
