"""Untrusted text: what may be stored and how it is shortened for lists.

Text from contacts, users and imported files is stored verbatim (emoji, right-to-left marks, Markdown and HTML
included). Only what PostgreSQL cannot hold changes it, at the edge where it enters (``clean_text`` for one
text, ``clean_json`` for a whole JSON value): NUL characters and lone UTF-16 surrogates (an unpaired
``\\ud800`` escape in JSON) become U+FFFD, and text past the limit is cut. A message's ``data`` flags each
change. Numbers jsonb cannot hold (infinite, NaN) are refused.

A contact's name and custom fields hold at most what the contact form accepts, whoever writes them (an agent
in the inbox, ``workbench.services.contacts``; a funnel's set-field step, ``workbench.services.runs``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from workbench.base.errors import InvalidInput
from workbench.store.config import get_settings

_SURROGATES = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"

MAX_CONTACT_NAME_CHARS = 255
MAX_CONTACT_FIELDS = 50
MAX_CONTACT_FIELD_CHARS = 1_000
"""Longest custom field value: a note or an address, not a document."""
MAX_SEARCH_CHARS = 200
"""Longest search the lists take (the Contatos list, the inbox): a name, a phone or an e-mail, not a document."""
CONTACT_FIELD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
"""A custom field's name: what funnel templates reach as ``{{contact.custom_data.KEY}}`` (the funnel's own rule
for field names, ``engine/core/nodes/base.py``)."""



def clean_text(text: str, limit: int | None = None) -> tuple[str, dict[str, bool]]:
    """Return text that PostgreSQL can store, and flags describing any change made.

    Args:
        text: the untrusted text.
        limit: the most characters kept (default ``max_text_chars``); fields with a smaller column pass theirs,
            or check the length themselves afterwards to refuse rather than cut.

    Returns:
        The text, and ``{"nul_replaced", "surrogates_replaced", "truncated": True}`` for what was changed.
    """
    flags: dict[str, bool] = {}
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
        flags["nul_replaced"] = True
    if not text.isascii() and _SURROGATES.search(text):
        text = _SURROGATES.sub(REPLACEMENT, text)
        flags["surrogates_replaced"] = True
    limit = get_settings().max_text_chars if limit is None else limit
    if len(text) > limit:
        text = text[:limit]
        flags["truncated"] = True
    return text, flags


def clean_json(value: Any) -> Any:
    """A JSON value (from a file, a form or a connector) that jsonb can store: every string, keys included,
    through ``clean_text``.

    Raises:
        InvalidInput: a number jsonb cannot hold (infinite or NaN: ``error.value_number``), or nesting too deep
            to walk (``error.value_depth``).
    """
    try:
        return _clean(value)
    except RecursionError:
        raise InvalidInput("nested too deep", key="error.value_depth") from None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)[0]
    if isinstance(value, dict):
        return {(clean_text(k)[0] if isinstance(k, str) else k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"number {value}", key="error.value_number")
    return value


def preview(text: str | None, length: int = 120) -> str | None:
    """One line of at most ``length`` characters for the conversation list."""
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1] + "…"


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE`` / ``ILIKE`` with the user's own ``%``, ``_`` and ``\\`` taken literally (PostgreSQL's
    default escape character is the backslash)."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
