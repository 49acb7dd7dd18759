"""Settings: one validated object read from the environment, for the whole product and its connectors.

Every setting is an environment variable named ``WORKBENCH_<FIELD>`` (upper case), except the two
server URLs, which follow the usual names ``DATABASE_URL`` and ``REDIS_URL``. README's "Settings"
table lists each of them; ``tests/test_docs.py`` checks that it does.

The connector reads its settings here too, and imports nothing else of ``workbench`` (pyproject.toml's
import contracts), so this module stays a leaf: it imports no module of the product.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Product settings with their documented defaults."""

    data_dir: Path = Field(Path(".workbench"), description="Where embedded PostgreSQL, Redis, media and keys live.")
    database_url: str | None = Field(None, description="PostgreSQL URL; unset = embedded server in the data dir.")
    redis_url: str | None = Field(None, description="Redis URL; unset = embedded server in the data dir.")
    secret_key: str | None = Field(None, description="Fernet key for secrets at rest; unset = 0600 key file.")
    panel_port: int = Field(8501, description="Port of the Streamlit panel.")
    panel_address: str = Field("127.0.0.1", description="Address the panel listens on.")
    workers: int = Field(2, description="RQ workers started by `up`.")
    outside_calls_concurrency: int = Field(8, description="Most outside calls (AI, webhooks, Odoo) the calls pool "
                                           "runs at once.")
    typing_ms_per_char: int = Field(40, description="Typing indicator time per character of an outbound text.")
    typing_max_ms: int = Field(4000, description="Longest typing indicator before one message.")
    send_min_gap_ms: int = Field(1000, description="Shortest gap between two sends of one number (0 = none).")
    sends_per_minute: int = Field(40, description="Most messages one number sends per minute (0 = no limit).")
    inbound_batch: int = Field(200, description="Most inbound events stored in one transaction.")
    inbound_lanes: int = Field(4, ge=1, le=64, description="Inbound lanes per number: how many workers can drain "
                               "one number's contacts at once (connector/contracts.py, lane_of).")
    drain_linger_ms: int = Field(2000, description="How long an inbound job waits for more events before it ends.")
    drain_gather_ms: float = Field(25, ge=0, le=50, description="How long an inbound job lets events gather before "
                                   "each read while it reads more than jobs.GATHER_RATE messages a second (under "
                                   "load), so that its batches are larger; 0 reads again at once.")
    outbox_republish_after_s: int = Field(30, description="Pending outbox rows older than this are re-published.")
    login_max_failures: int = Field(5, description="Failed logins of one e-mail from one client address before "
                                                   "further tries from there must wait.")
    login_address_max_failures: int = Field(30, description="Failed logins from one public client address, whatever "
                                            "the e-mails, before every try from there must wait (0 = no such limit).")
    login_lockout_s: int = Field(60, description="First wait after too many failed logins (doubles with each "
                                                 "further failure).")
    session_ttl_h: int = Field(72, description="How long a login survives without activity.")
    max_text_chars: int = Field(65536, description="Longest text accepted in one message; longer is cut and flagged.")
    media_max_mb: int = Field(64, description="Largest media file stored.")
    wa_accept_groups: bool = Field(False, description="Real numbers (neonize) accept WhatsApp group messages "
                                                      "and reply in the group; off = groups are ignored.")
    outbound_allow: str = Field("", description="Hosts and networks (CIDR) that funnel HTTP calls may reach although "
                                                "they are not public, e.g. `10.0.5.0/24, crm.intranet` (README, "
                                                "\"Chamadas HTTP\").")
    analytics_refresh_s: int = Field(60, description="How often the workers bring the dashboards' DuckDB copy up to "
                                                     "date (seconds; 0 = never by themselves).")
    log_level: str = Field("INFO", description="Log level of the connector processes (DEBUG, INFO, WARNING, ...).")


def _env_name(field: str) -> str:
    if field in ("database_url", "redis_url"):
        return field.upper()
    return f"WORKBENCH_{field.upper()}"


def env_names() -> dict[str, str]:
    """Map each setting to the environment variable that sets it."""
    return {name: _env_name(name) for name in Settings.model_fields}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (``os.environ`` by default)."""
    environ = os.environ if environ is None else environ
    values = {name: environ[var] for name, var in env_names().items() if environ.get(var)}
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
