"""Outbound HTTP for funnel steps ("Chamada HTTP"): one attempt of a rendered request, behind an SSRF guard.

The step (``engine/core/nodes/webhook.py``) renders its templates into a JSON-able request with no secret in it
(auth and signing name workspace secrets, ``workbench/services/secrets.py``); ``perform`` sends it once and says
what happened. Retries belong to the caller (the outside-calls executor, or ``call_with_retries``): a timeout, a
refused connection, 429 and 5xx raise ``RetryableHTTPError``; everything else is a final ``HTTPOutcome``. Every
attempt carries the same idempotency key (``Idempotency-Key`` and, when signed, ``webhook-id``).

**SSRF guard.** A funnel author types the URL and a contact's text may end up in it, so the worker must not
become a way into the machine's own network. For the URL and for every redirect (followed here, by hand, at most
``MAX_REDIRECTS``) we resolve the host ourselves and refuse it when *any* of its addresses is not public:
loopback, private (RFC 1918, fc00::/7), link-local, multicast, reserved, unspecified, shared (100.64/10) and cloud
metadata (169.254.169.254, fd00:ec2::254) — ``ipaddress``'s ``is_global`` plus explicit checks. We then connect
to the checked address itself (the URL's host replaced by the IP, ``Host`` and TLS SNI kept, so the certificate is
still verified for the name): there is no second lookup an attacker's DNS could answer differently (DNS
rebinding). ``WORKBENCH_OUTBOUND_ALLOW`` lists hosts and CIDRs that are exempt (an intranet API; the tests' local
servers). Only http and https; the response body is read as a stream and cut at ``MAX_BODY_BYTES``; the whole
exchange, redirects included, is bounded by the step's timeout (at most ``MAX_TIMEOUT_S``).

**Signing** follows Standard Webhooks: ``webhook-id`` (the idempotency key), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, keyed by the base64
text after ``whsec_`` of a workspace secret. A receiver checks it with the same three values (README, "Chamadas
HTTP").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from workbench.services.auth import Actor
from workbench.services.outside_calls import FunctionExecutor, OutsideCallView, RetryLater, register
from workbench.services.secrets import secret_value, signing_key
from workbench.store.config import get_settings
from workbench.store.db import session_scope

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 1024 * 1024
MAX_RETRY_AFTER_S = 300.0
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("100.100.100.200")})
"""Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba): refused even where a
broader allow-list would cover them, unless listed exactly."""
_REDIRECTS = {301, 302, 303, 307, 308}
_USER_AGENT = "workbench-webhook/1"


class HTTPCallError(Exception):
    """A request that cannot be sent as configured (bad URL, refused address, missing secret): final, not retried.

    ``reason`` is a short pt-BR-free code for events (``ssrf``, ``url``, ``secret``, ...); ``detail`` says more.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RetryableHTTPError(Exception):
    """This attempt failed in a way worth trying again (timeout, connection refused, 429, 5xx).

    ``retry_after_s``: what the server asked for (429/503 ``Retry-After``), capped; None when it said nothing.
    """

    def __init__(self, reason: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class HTTPOutcome:
    """The final answer of one request: ``ok`` for 2xx; ``values`` maps each response-mapping target to what
    its JSON path found (targets whose path found nothing are absent)."""

    ok: bool
    status: int
    reason: str
    latency_ms: int
    values: dict[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def as_result(self) -> dict[str, Any]:
        """The JSON-able result stored on the outside call and handed to the step's ``on_result``."""
        result: dict[str, Any] = {"ok": self.ok, "status": self.status, "latency_ms": self.latency_ms,
                                  "values": self.values, "missing": list(self.missing)}
        if not self.ok:
            result["error"] = self.reason
        return result


# -- the guard ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """Hosts (exact, case-insensitive) and networks exempt from the SSRF guard."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        """Read ``"10.1.2.0/24, intranet.local, 127.0.0.1"`` (commas or blanks); an unreadable item is ignored
        rather than widening anything."""
        hosts, networks = set(), []
        for item in (text or "").replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is listed."""
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether the address is inside a listed network (a metadata address only when listed on its own)."""
        if address in METADATA_ADDRESSES:
            return any(net.num_addresses == 1 and address in net for net in self.networks)
        return any(address in net for net in self.networks if net.version == address.version)


def configured_allow_list() -> AllowList:
    """The allow-list of the ``WORKBENCH_OUTBOUND_ALLOW`` setting."""
    return AllowList.parse(get_settings().outbound_allow)


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address may be called without being allowed: globally routable and not a metadata endpoint."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address in METADATA_ADDRESSES:
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_loopback
                                      or address.is_link_local or address.is_private or address.is_unspecified)


Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system's resolver), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def checked_address(url: httpx.URL, allow: AllowList, resolver: Resolver = system_resolver) -> str:
    """The address to connect to for ``url``, after the guard; raises ``HTTPCallError``.

    Every address of the host must pass (a name that also resolves to 10.0.0.1 is refused even if its first
    address is public), except for listed hosts and addresses inside listed networks.
    """
    if url.scheme not in ("http", "https"):
        raise HTTPCallError("scheme", url.scheme)
    host = url.host
    if not host:
        raise HTTPCallError("url", "no host")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(host, port)]
        except (OSError, UnicodeError) as exc:
            raise RetryableHTTPError("dns") from exc
        if not addresses:
            raise RetryableHTTPError("dns")
    if not allow.allows_host(host):
        for address in addresses:
            if not is_public(address) and not allow.allows_address(address):
                raise HTTPCallError("ssrf", str(address))
    return str(addresses[0])


# -- one request --------------------------------------------------------------------------------------------------


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value for ``body``: ``v1,<base64 HMAC-SHA256>``."""
    payload = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _body(request: Mapping[str, Any]) -> tuple[bytes, str | None]:
    kind = request.get("body_kind") or "none"
    if kind == "json":
        return json.dumps(request.get("body"), ensure_ascii=False, separators=(",", ":")).encode(), "application/json"
    if kind == "form":
        pairs = [(str(k), str(v)) for k, v in request.get("body") or []]
        return urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    return b"", None


def _headers(request: Mapping[str, Any], secrets: Callable[[str], str | None], body: bytes,
             content_type: str | None) -> dict[str, str]:
    # identity: the body is counted as it arrives (a compressed answer could inflate far past the cap)
    headers: dict[str, str] = {"User-Agent": _USER_AGENT, "Accept": "application/json, */*;q=0.5",
                               "Accept-Encoding": "identity"}
    for name, value in request.get("headers") or []:
        name, value = str(name).strip(), str(value)
        if not name or any(c in name + value for c in "\r\n\x00"):
            raise HTTPCallError("header", name)
        headers[name] = value
    if content_type:
        headers["Content-Type"] = content_type
    key = str(request.get("idempotency_key") or "")
    if key:
        headers["Idempotency-Key"] = key
    auth = request.get("auth") or {}
    kind = auth.get("kind") or "none"
    if kind != "none":
        secret = secrets(str(auth.get("secret") or ""))
        if secret is None:
            raise HTTPCallError("secret", str(auth.get("secret") or ""))
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif kind == "basic":
            user = str(auth.get("username") or "")
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        elif kind == "header":
            name = str(auth.get("header") or "").strip()
            if not name or any(c in name + secret for c in "\r\n\x00"):
                raise HTTPCallError("header", name)
            headers[name] = secret
        else:
            raise HTTPCallError("auth", str(kind))
    signing = request.get("sign_secret")
    if signing:
        secret = secrets(str(signing))
        if secret is None:
            raise HTTPCallError("secret", str(signing))
        timestamp = int(time.time())
        headers["webhook-id"] = key
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign(secret, key, timestamp, body)
    return headers


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "").strip()
    if raw.isdigit():
        return min(float(raw), MAX_RETRY_AFTER_S)
    return None


def _read_capped(response: httpx.Response, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_raw():  # raw: a small gzip bomb must not inflate past the cap before we count
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPCallError("too_large", str(MAX_BODY_BYTES))
        if time.monotonic() > deadline:
            raise RetryableHTTPError("timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def timeout_of(request: Mapping[str, Any]) -> float:
    """The request's timeout in seconds: its own (bounded to 1..``MAX_TIMEOUT_S``) or ``DEFAULT_TIMEOUT_S``."""
    raw = request.get("timeout_s")
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return min(max(float(raw), 1.0), MAX_TIMEOUT_S)
    return DEFAULT_TIMEOUT_S


def perform(request: Mapping[str, Any], secrets: Callable[[str], str | None], *, allow: AllowList | None = None,
            resolver: Resolver = system_resolver) -> HTTPOutcome:
    """Send one attempt of ``request`` and return its final outcome.

    Args:
        request: the step's rendered request: ``method``, ``url``, ``query`` and ``headers`` (lists of
            ``[name, value]``), ``body_kind`` (``none``/``json``/``form``) and ``body``, ``auth`` (``kind``
            none/bearer/basic/header, ``secret`` name, ``username``, ``header``), ``sign_secret`` (a secret name
            or None), ``timeout_s``, ``idempotency_key`` and ``mapping`` (``[{"path": ..., "target": ...}]``).
        secrets: the workspace's secret by name (None when missing).
        allow: hosts/networks exempt from the guard (default: the ``WORKBENCH_OUTBOUND_ALLOW`` setting).
        resolver: host name -> addresses (tests pass a fake one to make a name resolve to a private address).

    Raises:
        RetryableHTTPError: timeout, connection refused or reset, DNS failure, 429 or 5xx.
        HTTPCallError: the request cannot be sent as configured (URL, scheme, refused address, secret, header).
    """
    allow = configured_allow_list() if allow is None else allow
    method = str(request.get("method") or "GET").upper()
    if method not in METHODS:
        raise HTTPCallError("method", method)
    timeout = timeout_of(request)
    started = time.monotonic()
    deadline = started + timeout
    body, content_type = _body(request)
    headers = _headers(request, secrets, body, content_type)
    try:
        url = httpx.URL(str(request.get("url") or ""))
        query = [(str(k), str(v)) for k, v in request.get("query") or []]
        if query:
            url = url.copy_merge_params(query)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise HTTPCallError("url", type(exc).__name__) from exc
    with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            response_status, location, data, retry_after = _one_hop(client, method, url, headers, body, allow,
                                                                     resolver, deadline)
            if response_status in _REDIRECTS and location is not None:
                target = url.join(location)
                if target.host != url.host or target.scheme != url.scheme or target.port != url.port:
                    # a credential meant for one host never follows a redirect to another
                    for name in [h for h in headers if h.lower() in ("authorization", "cookie")]:
                        del headers[name]
                    if (request.get("auth") or {}).get("kind") == "header":
                        headers.pop(str(request["auth"].get("header") or "").strip(), None)
                if response_status == 303 or (response_status in (301, 302) and method == "POST"):
                    method, body = "GET", b""
                    headers.pop("Content-Type", None)
                url = target
                continue
            latency = int((time.monotonic() - started) * 1000)
            if response_status == 429 or response_status >= 500:
                raise RetryableHTTPError(f"HTTP {response_status}", response_status, retry_after)
            ok = 200 <= response_status < 300
            values, missing = _map(request.get("mapping") or [], data) if ok else ({}, ())
            return HTTPOutcome(ok, response_status, "" if ok else f"HTTP {response_status}", latency, values, missing)
    raise HTTPCallError("redirects", str(MAX_REDIRECTS))


def _one_hop(client: httpx.Client, method: str, url: httpx.URL, headers: dict[str, str], body: bytes,
             allow: AllowList, resolver: Resolver, deadline: float) -> tuple[int, str | None, bytes, float | None]:
    """Send to the checked address of ``url``; returns status, Location, the (capped) body and Retry-After."""
    address = checked_address(url, allow, resolver)
    host_header = url.netloc.decode("ascii")
    pinned = url.copy_with(host=address)
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host  # the certificate is verified for the name, not the IP
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RetryableHTTPError("timeout")
    hop_timeout = httpx.Timeout(remaining)
    try:
        req = client.build_request(method, pinned, headers={**headers, "Host": host_header}, content=body or None,
                                   timeout=hop_timeout, extensions=extensions)
        response = client.send(req, stream=True)
        try:
            if response.status_code in _REDIRECTS:
                return response.status_code, response.headers.get("location"), b"", None
            data = _read_capped(response, deadline)
            return response.status_code, None, data, _retry_after(response)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        raise RetryableHTTPError("timeout") from exc
    except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
        raise RetryableHTTPError("connection") from exc


# -- response mapping ---------------------------------------------------------------------------------------------


_MISSING = object()


def json_path(data: Any, path: str) -> Any:
    """The value at a simple JSON path (``$.a.b[0].c``, ``a.b.0.c``, ``items[-1]``); ``_MISSING`` when absent.

    Deliberately small: keys and list indexes only, no filters or wildcards, so an author's path costs at most one
    step per segment.
    """
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    text = text.replace("[", ".").replace("]", "")
    current = data
    for part in (p for p in text.split(".") if p != ""):
        if isinstance(current, Mapping):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return _MISSING
        else:
            return _MISSING
    return current


def _map(mapping: Sequence[Mapping[str, Any]], data: bytes) -> tuple[dict[str, Any], tuple[str, ...]]:
    if not mapping:
        return {}, ()
    try:
        parsed = json.loads(data.decode("utf-8")) if data else None
    except (UnicodeDecodeError, ValueError):
        parsed = None
    values: dict[str, Any] = {}
    missing = []
    for item in mapping:
        path, target = str(item.get("path") or ""), str(item.get("target") or "")
        found = json_path(parsed, path) if parsed is not None else _MISSING
        if found is _MISSING or found is None:
            missing.append(path)
        elif target:
            # objects and lists are stored as their JSON text: funnel variables and fields hold scalars
            values[target] = found if isinstance(found, str | int | float | bool) else json.dumps(found)[:4096]
    return values, tuple(missing)


# -- retries outside the outside-calls mechanism ------------------------------------------------------------------


def backoff_s(attempt: int) -> float:
    """Seconds before try ``attempt + 1``: 2, 4, 8, ... capped at 5 minutes."""
    return float(min(2 ** attempt, MAX_RETRY_AFTER_S))


def call_with_retries(request: Mapping[str, Any], secrets: Callable[[str], str | None], *, max_attempts: int = 3,
                      sleep: Callable[[float], None] = time.sleep, allow: AllowList | None = None,
                      resolver: Resolver = system_resolver) -> dict[str, Any]:
    """``perform`` with up to ``max_attempts`` tries and exponential backoff (honouring ``Retry-After``), all with
    the request's one idempotency key; the JSON-able result, ``{"ok": False, "error": ...}`` after the last try."""
    last: RetryableHTTPError | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            return perform(request, secrets, allow=allow, resolver=resolver).as_result() | {"attempts": attempt}
        except RetryableHTTPError as exc:
            last = exc
            if attempt < max_attempts:
                sleep(exc.retry_after_s if exc.retry_after_s is not None else backoff_s(attempt))
        except HTTPCallError as exc:
            return {"ok": False, "error": exc.reason, "detail": exc.detail, "attempts": attempt}
    assert last is not None
    return {"ok": False, "error": last.reason, "status": last.status, "kind": "failed", "attempts": max_attempts}


# -- the outside-calls executor (service "http") ------------------------------------------------------------------


def _kind(exc: RetryableHTTPError) -> str:
    if exc.status == 429:
        return "rate_limited"
    if exc.status is not None:
        return "server"
    return "timeout" if exc.reason == "timeout" else "unreachable"


def _send(workspace_id: int, request: Mapping[str, Any], key: str) -> dict[str, Any]:
    """One attempt with ``key`` as idempotency key. The named secrets are read (and decrypted) first, in a session
    closed before the network."""
    request = dict(request) | {"idempotency_key": key}
    names = {str(n) for n in ((request.get("auth") or {}).get("secret"), request.get("sign_secret")) if n}
    with session_scope() as session:
        values = {name: secret_value(session, workspace_id, name) for name in names}
    try:
        return perform(request, values.get).as_result()
    except RetryableHTTPError as exc:
        raise RetryLater(exc.reason, _kind(exc)) from None
    except HTTPCallError as exc:
        return {"ok": False, "error": exc.reason, "detail": exc.detail[:200], "kind": "failed"}


def run_call(call: OutsideCallView) -> dict[str, Any]:
    """One try of a "Chamada HTTP" call: the call id is the idempotency key (``Idempotency-Key``, ``webhook-id``)."""
    return _send(call.workspace_id, call.request, f"wb-call-{call.id}")


class HTTPExecutor(FunctionExecutor):
    """3 tries, 2 s then 4 s apart; each try is bounded by the step's timeout (at most 60 s). The editor's test chat
    sends the request for real, once (``preview``), behind the same guard."""

    def preview(self, actor: Actor, request: Mapping[str, Any], history: Any) -> dict[str, Any]:
        """One real attempt for the test chat, with a fresh idempotency key (``wb-test-...``)."""
        return _send(actor.workspace_id, request, f"wb-test-{uuid.uuid4().hex[:16]}")


EXECUTOR = HTTPExecutor(run_call, max_attempts=3, timeout_s=MAX_TIMEOUT_S + 5, base_s=2.0, max_backoff_s=30.0)
register("http", EXECUTOR)
