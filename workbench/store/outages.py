"""PostgreSQL or Redis out of reach, as the panel sees it.

Pages turn these, like the product's own errors, into messages with ``workbench.base.i18n.error_text``.
"""

from __future__ import annotations

import redis
from sqlalchemy import exc as sa_exc

from workbench.base.errors import WorkbenchError

UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, redis.ConnectionError, redis.TimeoutError)
"""Down, restarting or unreachable: pages say so and offer a retry instead of a traceback. Nothing was lost,
because every write is one transaction or a Redis command that failed whole."""

PAGE_ERRORS = (WorkbenchError, *UNAVAILABLE)
"""What a page's action handler catches: product errors, and a server out of reach (the action did nothing;
the user may retry)."""
