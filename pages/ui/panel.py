"""Streamlit helpers the panel's pages share: what to show while PostgreSQL or Redis is out of reach.

A page's actions report an outage like any refusal (``pages/ui/feedback.py``); ``app.py`` catches an outage
during a page's run; live parts (fragments) rerun on their own, outside ``app.py``, so they use
``live_fragment``, which re-checks the login first (``pages/ui/gate.py``), shows the notice in place and tries
again at the next tick.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import streamlit as st

from pages.ui.gate import recheck
from workbench.base.i18n import t
from workbench.store.outages import DRAWING_ERRORS

log = logging.getLogger(__name__)


def unavailable_notice(exc: Exception, *, retry_key: str | None = None) -> None:
    """Say in Portuguese that a server is out of reach (logged by type only: no URLs, no details)."""
    log.warning("panel: a server is unreachable (%s)", type(exc).__name__)
    st.error(t("error.unavailable"), icon=":material/cloud_off:")
    if retry_key:
        st.button(t("error.retry"), key=retry_key, icon=":material/refresh:")  # a click reruns the page


def live_fragment(run_every: float) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``st.fragment(run_every=...)`` whose body shows the outage notice instead of a traceback."""

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(func)
        def body(*args: Any, **kwargs: Any) -> None:
            try:
                recheck()  # a tick runs without app.py's gate: a login that ended reruns the whole app
                func(*args, **kwargs)
            except DRAWING_ERRORS as exc:
                unavailable_notice(exc)

        return st.fragment(run_every=run_every)(body)

    return decorate
