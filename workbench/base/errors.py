"""The product's exceptions (``workbench.base.product_errors``) and the outages pages catch. Pages turn both into
messages with ``workbench.base.i18n.error_text``.
"""

from __future__ import annotations

import redis
from sqlalchemy import exc as sa_exc

from workbench.base.product_errors import (
    AuthError,
    Conflict,
    InvalidInput,
    LoginThrottled,
    NotFound,
    PermissionDenied,
    WorkbenchError,
)

# PostgreSQL or Redis cannot be reached (down, restarting, network): pages say so and offer a retry instead
# of a traceback; nothing was lost, because every write is one transaction or a Redis command that failed whole.
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, redis.ConnectionError, redis.TimeoutError)

# What a page's action handler catches and shows with ``workbench.base.i18n.error_text``: product errors, and a
# server out of reach (the action did nothing; the user may retry).
PAGE_ERRORS = (WorkbenchError, *UNAVAILABLE)

__all__ = ["PAGE_ERRORS", "UNAVAILABLE", "AuthError", "Conflict", "InvalidInput", "LoginThrottled", "NotFound",
           "PermissionDenied", "WorkbenchError"]
