"""The product's clock and its default time zone, one of each.

Everything that needs "now" calls ``now()`` (services, the worker, the pure funnel core's preview, the panel's
time formats), and everything that needs a zone when none is set uses ``DEFAULT_TIMEZONE``: a new workspace's
zone, funnel runs of a workspace without one, the panel's display zone. It sits on the lowest floor so the pure
funnel core may use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime

DEFAULT_TIMEZONE = "America/Sao_Paulo"
"""IANA zone used wherever no other is set (the product's people are in Brazil)."""


def now() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(UTC)
