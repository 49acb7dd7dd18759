"""The one place that speaks to Odoo: its external API over XML-RPC, with timeouts and a hardened parser.

Kept small on purpose (``version``, ``authenticate``, ``execute``) so that Odoo 19's JSON-2 API can replace it
without touching ``workbench/services/odoo.py``. Two things the standard library's client does not do:

- **timeouts**: ``xmlrpc.client`` waits forever by default; the transport here gives every connection the
  client's timeout (connect and each read);
- **untrusted answers**: the Odoo URL is typed by a user, so its answers may be hostile. The parser is
  defusedxml's ``DefusedExpatParser`` with DTDs, entities and external references forbidden (no billion laughs,
  no XXE), compressed answers are refused (a gzip bomb) and an answer is cut at ``MAX_RESPONSE_BYTES``. This is
  done per transport, not with ``defusedxml.xmlrpc.monkey_patch()``, which would change the parser of the whole
  process.

Every failure is an ``OdooError`` whose ``kind`` says what went wrong in terms a person can act on.
"""

from __future__ import annotations

import http.client
import xmlrpc.client
from typing import Any, Literal
from xml.parsers.expat import ExpatError

from defusedxml.common import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser

DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

Kind = Literal["unreachable", "timeout", "database", "auth", "no_crm", "access", "fault", "protocol"]
RETRYABLE: frozenset[str] = frozenset({"unreachable", "timeout"})


def lead_url(base_url: str, lead_id: int) -> str:
    """The lead's page in Odoo's web client (the ``/web#`` form every version since 8 understands)."""
    return f"{base_url.rstrip('/')}/web#id={int(lead_id)}&model=crm.lead&view_type=form"


class OdooError(Exception):
    """A failed exchange with Odoo. ``kind``: ``unreachable`` (no connection, HTTP 5xx), ``timeout``, ``database``
    (no such database), ``auth`` (login or API key refused), ``no_crm`` (the CRM app is not installed), ``access``
    (the user lacks rights), ``fault`` (any other server error), ``protocol`` (not an Odoo answer).
    ``detail`` is short and holds no credential."""

    def __init__(self, kind: Kind, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail[:300]

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed (Odoo down or slow)."""
        return self.kind in RETRYABLE


class _Hardened:
    """Transport mix-in: a timeout on every connection, defusedxml's parser, no gzip, a size cap."""

    accept_gzip_encoding = False
    timeout: float = DEFAULT_TIMEOUT_S

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)  # type: ignore[misc]
        conn.timeout = self.timeout
        return conn

    def getparser(self) -> tuple[Any, Any]:
        unmarshaller = xmlrpc.client.Unmarshaller(use_datetime=False, use_builtin_types=False)
        return DefusedExpatParser(unmarshaller, forbid_dtd=True), unmarshaller

    def parse_response(self, response: http.client.HTTPResponse) -> Any:
        if response.getheader("Content-Encoding", "").lower() not in ("", "identity"):
            raise OdooError("protocol", "compressed answer")
        parser, unmarshaller = self.getparser()
        size = 0
        while data := response.read(64 * 1024):
            size += len(data)
            if size > MAX_RESPONSE_BYTES:
                raise OdooError("protocol", "answer too large")
            parser.feed(data)
        parser.close()
        return unmarshaller.close()


class _Transport(_Hardened, xmlrpc.client.Transport):
    pass


class _SafeTransport(_Hardened, xmlrpc.client.SafeTransport):
    pass


class OdooClient:
    """One Odoo server, database and user. ``api_key`` is the user's API key (or password)."""

    def __init__(self, url: str, database: str, login: str, api_key: str, *,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.login = login
        self._key = api_key
        self.timeout = timeout
        self._uid: int | None = None

    def _proxy(self, endpoint: str) -> xmlrpc.client.ServerProxy:
        transport = (_SafeTransport() if self.url.startswith("https://") else _Transport())
        transport.timeout = self.timeout
        return xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/{endpoint}", transport=transport, allow_none=True)

    def _call(self, endpoint: str, method: str, *args: Any) -> Any:
        try:
            return getattr(self._proxy(endpoint), method)(*args)
        except xmlrpc.client.Fault as fault:
            raise _from_fault(fault) from None
        except xmlrpc.client.ProtocolError as exc:
            kind: Kind = "unreachable" if exc.errcode >= 500 or exc.errcode in (404, 429) else "protocol"
            raise OdooError(kind, f"HTTP {exc.errcode}") from None
        except TimeoutError:
            raise OdooError("timeout") from None
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise OdooError("unreachable", type(exc).__name__) from None
        except (DefusedXmlException, ExpatError, xmlrpc.client.ResponseError, ValueError) as exc:
            raise OdooError("protocol", type(exc).__name__) from None

    def version(self) -> dict[str, Any]:
        """The server's version information (no login needed)."""
        answer = self._call("common", "version")
        if not isinstance(answer, dict):
            raise OdooError("protocol", "version")
        return answer

    def authenticate(self) -> int:
        """Log in; the user's id. ``OdooError("auth")`` when the login or key is refused."""
        uid = self._call("common", "authenticate", self.database, self.login, self._key, {})
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise OdooError("auth")
        self._uid = uid
        return uid

    def execute(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``execute_kw`` of ``model.method`` as the logged-in user (logging in first when needed)."""
        uid = self._uid or self.authenticate()
        return self._call("object", "execute_kw", self.database, uid, self._key, model, method, list(args), kwargs)


def _from_fault(fault: xmlrpc.client.Fault) -> OdooError:
    """Name what a Fault means; Odoo puts the Python exception's text (sometimes a traceback) in ``faultString``."""
    text = str(fault.faultString or "")
    lower = text.lower()
    if "database" in lower and ("does not exist" in lower or "not found" in lower):
        return OdooError("database")
    if "accessdenied" in lower.replace(" ", "") or "access denied" in lower:
        return OdooError("auth")
    if "crm.lead" in lower and ("doesn't exist" in lower or "does not exist" in lower or "keyerror" in lower):
        return OdooError("no_crm")
    if "accesserror" in lower.replace(" ", "") or "not allowed" in lower:
        return OdooError("access", text.strip().splitlines()[-1] if text.strip() else "")
    return OdooError("fault", text.strip().splitlines()[-1] if text.strip() else "")
