"""What a page says after an action: the refusal in Portuguese, or a success message that survives the rerun.

Buttons and forms run their callbacks before the page draws again, so a message for the user is kept in session
state ("flashed") and shown once by the next run, where the page calls ``show_flash``. ``attempt`` runs the
service calls of one action and flashes ``error_text`` for ``workbench.store.outages.PAGE_ERRORS`` (a refusal,
or PostgreSQL/Redis out of reach) instead of letting it break the page; an ``AfterCommit`` (saved, but Redis
did not take what it publishes) is a warning, so nobody repeats an action that went through::

    def _delete(funnel_id: int) -> None:
        with attempt(FLASH_KEY, t("funnels.deleted")):
            funnels.delete_funnel(actor, funnel_id)
            ...  # runs only when the call went through

Every message here is catalog text; nothing a user typed is rendered through it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from pages.ui.gate import recheck
from workbench.base.errors import AfterCommit
from workbench.base.i18n import error_text
from workbench.store.outages import PAGE_ERRORS, UNAVAILABLE

Kind = Literal["success", "info", "warning", "error"]


def flash(key: str, kind: Kind, text: str, scope: Hashable | None = None) -> None:
    """Keep a message under ``key`` for the next run; ``scope`` (e.g. a card's id) says where it is shown."""
    st.session_state[key] = (scope, kind, text)


def show_flash(key: str, scope: Hashable | None = None) -> None:
    """Show, once, the message kept under ``key`` for ``scope`` (nothing when there is none)."""
    pending = st.session_state.get(key)
    if pending and pending[0] == scope:
        del st.session_state[key]
        getattr(st, pending[1])(pending[2])


@dataclass
class Outcome:
    """How an ``attempt`` ended: ``error`` is what refused it, None when it went through (``AfterCommit``
    included: the change is saved)."""

    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether the action went through."""
        return self.error is None


@contextmanager
def attempt(key: str | None = None, success: str | None = None, *, scope: Hashable | None = None) -> Iterator[Outcome]:
    """Run the block as one action; on ``PAGE_ERRORS`` skip the rest of it and tell the user why.

    Args:
        key: the flash key the message goes to (shown by ``show_flash(key, scope)``); None shows a refusal at
            once, where the page is drawing (for actions that run while the page draws, not in a callback).
        success: flashed when the block ends without a refusal. A block whose message depends on the result
            passes none and calls ``flash`` itself, after the service calls.
        scope: where the flashed message is shown (see ``flash``).

    Yields:
        The ``Outcome``, complete once the block has ended.
    """
    outcome = Outcome()
    # A callback runs before app.py's gate: make sure the login behind this action still stands (else the whole
    # app reruns from here). With PostgreSQL out of reach the block meets the outage itself and says so.
    with suppress(*UNAVAILABLE):
        recheck()
    try:
        yield outcome
    except AfterCommit as exc:  # it went through: no error, but the rest of the block did not run
        if key is None:
            st.warning(error_text(exc))
        else:
            flash(key, "warning", error_text(exc), scope)
        return
    except PAGE_ERRORS as exc:
        outcome.error = exc
        if key is None:
            st.error(error_text(exc))
        else:
            flash(key, "error", error_text(exc), scope)
        return
    if success is not None and key is not None:
        flash(key, "success", success, scope)
