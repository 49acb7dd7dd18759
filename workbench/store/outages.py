"""PostgreSQL or Redis out of reach, as the panel sees it.

Pages turn these, like the product's own errors, into messages with ``workbench.base.i18n.error_text``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy import exc as sa_exc

from workbench.base.errors import AfterCommit, WorkbenchError

log = logging.getLogger(__name__)

UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, redis.ConnectionError, redis.TimeoutError)
"""Down, restarting or unreachable: pages say so and offer a retry instead of a traceback. Nothing was lost,
because every write is one transaction or a Redis command that failed whole."""

PAGE_ERRORS = (WorkbenchError, *UNAVAILABLE)
"""What a page's action handler catches: product errors, and a server out of reach (the action did nothing;
the user may retry) — except ``AfterCommit``, a ``WorkbenchError`` saying the action went through."""

DRAWING_ERRORS = (*UNAVAILABLE, AfterCommit)
"""What a page's drawing meets from the servers and shows as the outage notice. A write made while drawing
(marking an opened conversation read) that met Redis down after its commit is saved; its live update waits."""


@contextmanager
def after_commit() -> Iterator[None]:
    """Run what a service does after its commit (publishing to Redis); an outage there raises ``AfterCommit``.

    Everything published after a commit is rebuilt from PostgreSQL once Redis answers: the sweep re-publishes
    pending outbox rows and re-schedules overdue timers, and the next change of the workspace moves its live
    revision. So the change stands, and the user is told it is saved instead of "nothing happened".
    """
    try:
        yield
    except UNAVAILABLE as exc:
        log.warning("saved, but publishing after the commit failed (%s)", type(exc).__name__)
        raise AfterCommit("saved; publishing waits for Redis") from exc
