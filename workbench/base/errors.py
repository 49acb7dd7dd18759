"""The product's exceptions. Free of database and Redis imports, so the catalog (``workbench.base.i18n``) and
through it the pure funnel core may use them; the outages pages also catch are in ``workbench.store.outages``.

::

    WorkbenchError                 base; carries a message key and context for the catalog
    ├── AuthError                  wrong credentials, expired login
    │   └── LoginThrottled         too many failures; ``retry_after_s``
    ├── PermissionDenied           the acting user's role does not allow it
    ├── NotFound                   no such row in the acting user's workspace (also: another workspace's row)
    ├── InvalidInput               bad user input (empty reply, malformed CSV row, ...)
    ├── Conflict                   the action does not fit the current state
    └── AfterCommit                the change is saved; what follows it (sending, live updates) waits for Redis
"""

from __future__ import annotations

from typing import Any


class WorkbenchError(Exception):
    """Base of every product error. ``key`` names the catalog message; ``context`` fills it."""

    key = "error.generic"

    def __init__(self, detail: str = "", *, key: str | None = None, **context: Any) -> None:
        super().__init__(detail or (key or self.key))
        self.detail = detail
        if key:
            self.key = key
        self.context = context


class AuthError(WorkbenchError):
    key = "error.auth"


class LoginThrottled(AuthError):
    key = "error.login_throttled"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"retry after {retry_after_s} s", retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class PermissionDenied(WorkbenchError):
    key = "error.permission"


class NotFound(WorkbenchError):
    key = "error.not_found"


class InvalidInput(WorkbenchError):
    key = "error.invalid"


class Conflict(WorkbenchError):
    key = "error.conflict"


class AfterCommit(WorkbenchError):
    """The change is saved, but publishing it after the commit met Redis out of reach.

    What it publishes is rebuilt from PostgreSQL once Redis answers (``workbench.store.outages.after_commit``),
    so pages say "saved" rather than "nothing happened": repeating the action would do it twice.
    """

    key = "error.after_commit"
