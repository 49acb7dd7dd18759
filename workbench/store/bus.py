"""Redis: the connection, and publishing to the connector streams after a commit.

Redis is transport and ephemera. Anything published here can be rebuilt from PostgreSQL
(``republish_pending_outbox``, ``sync_instances``), so losing it delays work but loses nothing.
"""

from __future__ import annotations

import redis

from workbench.store.config import get_settings

_clients: dict[str, redis.Redis] = {}


def get_redis(url: str | None = None) -> redis.Redis:
    """A pooled client for ``url`` (default: the configured REDIS_URL). Responses are bytes, as RQ needs."""
    url = url or get_settings().redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set; start the product with `python -m workbench up`.")
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, health_check_interval=30)
    return client


def reset_clients() -> None:
    """Forget pooled clients (after a fork, or when the URL changes in tests)."""
    for client in _clients.values():
        client.close()
    _clients.clear()
