"""The HTTP client of "Chamada HTTP" against a real local server: methods, bodies, auth, mapping, retries with one
idempotency key, Standard Webhooks signatures, the body cap and the SSRF guard (no database needed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading

import pytest

from tests.fake_http import FakeHTTP
from workbench.services import http_call
from workbench.services.http_call import AllowList, HTTPCallError, RetryableHTTPError, perform

LOCAL = AllowList.parse("127.0.0.1/32")
SECRETS = {"token": "tok-123456789", "pass": "s3nha-longa!", "key": "k-abcdef",
           "assinatura": "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()}


@pytest.fixture
def server():
    fake = FakeHTTP().start()
    yield fake
    fake.stop()


def request(url: str, **extra) -> dict:
    return {"method": "POST", "url": url, "query": [], "headers": [], "body_kind": "none", "body": None,
            "auth": {"kind": "none"}, "sign_secret": None, "timeout_s": 5, "idempotency_key": "call-7",
            "mapping": []} | extra


def run(req: dict, allow: AllowList = LOCAL, **kwargs):
    return perform(req, SECRETS.get, allow=allow, **kwargs)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_each_method_sends_query_headers_and_json_body(server, method):
    server.script([{"status": 201, "json": {"id": 42}}])
    outcome = run(request(server.url + "/leads", method=method, query=[["origem", "whatsapp"], ["q", "a b&c"]],
                          headers=[["X-Origem", "bot"]], body_kind="json", body={"nome": "Ana \"A\"", "n": 1}))
    assert (outcome.ok, outcome.status) == (True, 201)
    got = server.requests[-1]
    assert (got.method, got.path, got.query) == (method, "/leads", [("origem", "whatsapp"), ("q", "a b&c")])
    assert got.headers["x-origem"] == "bot" and got.headers["idempotency-key"] == "call-7"
    assert json.loads(got.body) == {"nome": "Ana \"A\"", "n": 1}
    assert got.headers["content-type"] == "application/json"


def test_form_body_and_each_kind_of_auth(server):
    run(request(server.url, body_kind="form", body=[["nome", "Ana"], ["msg", "olá & tchau"]],
                auth={"kind": "bearer", "secret": "token"}))
    got = server.requests[-1]
    assert got.body == b"nome=Ana&msg=ol%C3%A1+%26+tchau"
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert got.headers["authorization"] == "Bearer tok-123456789"
    run(request(server.url, auth={"kind": "basic", "secret": "pass", "username": "bot"}))
    assert server.requests[-1].headers["authorization"] == "Basic " + base64.b64encode(b"bot:s3nha-longa!").decode()
    run(request(server.url, auth={"kind": "header", "secret": "key", "header": "X-Api-Key"}))
    assert server.requests[-1].headers["x-api-key"] == "k-abcdef"
    with pytest.raises(HTTPCallError) as missing:
        run(request(server.url, auth={"kind": "bearer", "secret": "nao-existe"}))
    assert missing.value.reason == "secret"


def test_response_mapping_reads_json_paths(server):
    server.script([{"json": {"data": {"lead": {"id": 9, "tags": ["a", "b"]}, "ok": True}, "items": [{"n": "x"}]}}])
    outcome = run(request(server.url, mapping=[
        {"path": "$.data.lead.id", "target": "vars.lead_id"}, {"path": "items[0].n", "target": "contact.custom_data.n"},
        {"path": "data.lead.tags", "target": "vars.tags"}, {"path": "data.nada", "target": "vars.nada"}]))
    assert outcome.values == {"vars.lead_id": 9, "contact.custom_data.n": "x", "vars.tags": '["a", "b"]'}
    assert outcome.missing == ("data.nada",)


def test_4xx_is_a_final_failure_and_5xx_429_are_retried_with_the_same_key_and_verifiable_signatures(server):
    server.script([{"status": 500}, {"status": 429, "headers": {"Retry-After": "7"}}, {"status": 200, "json": {}}])
    slept = []
    result = http_call.call_with_retries(request(server.url, body_kind="json", body={"a": 1},
                                                 sign_secret="assinatura"), SECRETS.get, max_attempts=3,
                                         sleep=slept.append, allow=LOCAL)
    assert result["ok"] is True and result["attempts"] == 3
    assert slept == [2.0, 7.0]  # backoff, then what Retry-After asked for
    keys = {(r.headers["idempotency-key"], r.headers["webhook-id"]) for r in server.requests}
    assert keys == {("call-7", "call-7")}
    # the documented recipe: HMAC-SHA256 with the base64-decoded key over "id.timestamp.body"
    key = base64.b64decode(SECRETS["assinatura"].removeprefix("whsec_"))
    for got in server.requests:
        signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert got.headers["webhook-signature"] == f"v1,{expected}"

    server.script([{"status": 404}])
    outcome = run(request(server.url))
    assert (outcome.ok, outcome.status, outcome.reason) == (False, 404, "HTTP 404")
    server.script([{"status": 503}])
    failed = http_call.call_with_retries(request(server.url), SECRETS.get, max_attempts=2, sleep=lambda s: None,
                                         allow=LOCAL)
    assert failed == {"ok": False, "error": "HTTP 503", "status": 503, "kind": "failed", "attempts": 2}


def test_a_server_slower_than_the_timeout_is_a_retryable_timeout(server):
    hold = threading.Event()
    server.script([{"hold": hold}])
    try:
        with pytest.raises(RetryableHTTPError) as err:
            run(request(server.url, timeout_s=1))
        assert err.value.reason == "timeout"
    finally:
        hold.set()


def test_connection_refused_is_retryable():
    with pytest.raises(RetryableHTTPError) as err:
        run(request("http://127.0.0.1:9/"))  # the discard port: nobody listens
    assert err.value.reason == "connection"


def test_a_body_over_1_mb_is_refused(server):
    server.script([{"body": b"x" * (http_call.MAX_BODY_BYTES + 10)}])
    with pytest.raises(HTTPCallError) as err:
        run(request(server.url))
    assert err.value.reason == "too_large"


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/",
                                 "http://0.0.0.0/", "http://100.64.0.1/", "http://224.0.0.1/", "http://localhost/"])
def test_the_guard_refuses_addresses_that_are_not_public(url):
    with pytest.raises(HTTPCallError) as err:
        run(request(url), allow=AllowList())
    assert err.value.reason == "ssrf"


def test_a_name_that_resolves_to_a_private_address_is_refused_whatever_its_other_addresses():
    resolver = {"intranet.example": ["10.1.2.3"], "mixed.example": ["93.184.215.14", "192.168.0.9"]}
    for host in resolver:
        with pytest.raises(HTTPCallError) as err:
            run(request(f"https://{host}/"), allow=AllowList(), resolver=lambda h, p: resolver[h])
        assert (err.value.reason, err.value.detail) == ("ssrf", resolver[host][-1])


def test_a_redirect_to_a_private_address_is_refused(server):
    server.script([{"status": 302, "redirect": "http://10.0.0.1/admin"}])
    with pytest.raises(HTTPCallError) as err:
        run(request(server.url + "/start"))
    assert (err.value.reason, err.value.detail) == ("ssrf", "10.0.0.1")
    assert len(server.requests) == 1


def test_redirects_are_followed_by_hand_up_to_five(server):
    server.script([{"status": 303, "redirect": "/b"}, {"status": 200, "json": {"v": 1}}])
    outcome = run(request(server.url + "/a", body_kind="json", body={"x": 1},
                          mapping=[{"path": "v", "target": "vars.v"}]))
    assert outcome.values == {"vars.v": 1}
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/a"), ("GET", "/b")]
    server.script([{"status": 307, "redirect": "/loop"}])
    with pytest.raises(HTTPCallError) as err:
        run(request(server.url + "/loop"))
    assert err.value.reason == "redirects"


def test_only_http_and_https():
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/"):
        with pytest.raises(HTTPCallError) as err:
            run(request(url), allow=AllowList())
        assert err.value.reason in ("scheme", "url")


def test_the_allow_list_lifts_the_guard_for_listed_hosts_and_networks(server):
    port = server.url.rsplit(":", 1)[1]
    assert run(request(f"http://localhost:{port}/"), allow=AllowList.parse("localhost"),
               resolver=lambda h, p: ["127.0.0.1"]).ok
    assert run(request(server.url), allow=AllowList.parse("127.0.0.0/8")).ok
    # a broad network never covers a metadata address: it must be listed on its own
    with pytest.raises(HTTPCallError):
        run(request("http://169.254.169.254/"), allow=AllowList.parse("169.254.0.0/16"))


def test_the_allow_list_setting_is_read_from_the_environment(settings_env):
    settings_env(WORKBENCH_OUTBOUND_ALLOW="10.0.5.0/24, crm.intranet")
    allow = http_call.configured_allow_list()
    assert allow.allows_host("CRM.intranet") and not allow.allows_host("other")
    import ipaddress
    assert allow.allows_address(ipaddress.ip_address("10.0.5.7"))


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.exemplo.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.exemplo.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_connects_to_the_checked_address_with_the_name_kept_for_sni_and_the_certificate(tmp_path):
    import socket
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    seen: list[str | None] = []
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            pass  # the client refuses our self-signed certificate, after sending its SNI
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    resolved = []

    def resolver(host: str, p: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    try:
        with pytest.raises(RetryableHTTPError):  # not trusted: the certificate is verified for the name
            run(request(f"https://api.exemplo.test:{port}/x"), resolver=resolver)
    finally:
        thread.join(5)
        listener.close()
    assert resolved == ["api.exemplo.test"], "resolved once, by the guard"
    assert seen == ["api.exemplo.test"], "TLS saw the name, while the socket went to the checked IP"
