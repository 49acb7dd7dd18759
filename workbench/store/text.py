"""Untrusted text: what may be stored and how it is shortened for lists.

Message text is stored verbatim (emoji, right-to-left marks, Markdown and HTML included). Only two
things change it, and both are flagged in the message's ``data``: NUL characters, which PostgreSQL text
cannot hold, and text past ``max_text_chars``.

A contact's name and custom fields hold at most what the contact form accepts, whoever writes them (an agent
in the inbox, ``workbench.services.contacts``; a funnel's set-field step, ``workbench.services.runs``).
"""

from __future__ import annotations

import re

from workbench.store.config import get_settings

MAX_CONTACT_NAME_CHARS = 255
MAX_CONTACT_FIELDS = 50
MAX_CONTACT_FIELD_CHARS = 1_000
"""Longest custom field value: a note or an address, not a document."""
CONTACT_FIELD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
"""A custom field's name: what funnel templates reach as ``{{contact.custom_data.KEY}}`` (the funnel's own rule
for field names, ``engine/core/nodes/base.py``)."""


def clean_text(text: str) -> tuple[str, dict[str, bool]]:
    """Return text that PostgreSQL can store, and flags describing any change made."""
    flags: dict[str, bool] = {}
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        flags["nul_replaced"] = True
    limit = get_settings().max_text_chars
    if len(text) > limit:
        text = text[:limit]
        flags["truncated"] = True
    return text, flags


def preview(text: str | None, length: int = 120) -> str | None:
    """One line of at most ``length`` characters for the conversation list."""
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1] + "…"
