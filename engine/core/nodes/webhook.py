"""Chamada HTTP: call any HTTP endpoint (Calendly, an internal API...) and continue by ``sucesso`` or ``falha``.

Pure like every node: ``execute`` renders the templates (URL, query and header values, the JSON body's string
values or the form's values) into a request with no secret in it — auth and signing name workspace secrets — and
returns it as a ``CallOutside("http", ...)`` with a call wait. The worker's executor
(``workbench/services/http_call.py``) sends it behind the SSRF guard, retrying timeouts, 429 and 5xx with one
idempotency key, and ``on_result`` stores the mapped response values (``caminho -> destino``) like any other
write, then takes ``sucesso`` (2xx) or ``falha`` with the status and a short reason in the funnel event.

The JSON body is a JSON document whose *string values* are templates: a contact's name with quotes in it cannot
break the document, since each value is rendered on its own after the document was parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.core.nodes.base import (
    CallOutside,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    TemplateStr,
    Wait,
    _check_target,
    check_template,
    raw_text,
    render_text,
    store_value,
)
from workbench.base.i18n import t

OUTPUTS = ["sucesso", "falha"]
MAX_ATTEMPTS = 3
"""Tries of one call (the executor's ``max_attempts``); the step's wait covers them all."""
MAX_LINES = 30
MAX_BODY_CHARS = 20_000
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_PARAM_NAME = re.compile(r"^[^\s=]{1,128}$")


def _split(line: str, sep: str) -> tuple[str, str] | None:
    if sep not in line:
        return None
    name, value = line.split(sep, 1)
    return name.strip(), value.strip()


def _pairs(lines: list[str], sep: str, name_rule: re.Pattern[str], code: str) -> list[str]:
    for line in lines:
        pair = _split(line, sep)
        if pair is None or not name_rule.match(pair[0]):
            raise PydanticCustomError(code, t(f"node.webhook.error.{code}"), {"line": line[:80]})
        check_template(pair[1])
    return lines


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return []


class WebhookData(NodeData):
    """A request and what to keep of its answer.

    Attributes:
        method, url: the URL is a template (only http and https, checked when the call runs).
        query: ``nome=valor`` lines (values are templates).
        headers: ``Nome: valor`` lines (values are templates; never put a secret here: use ``auth``).
        body_kind, body: ``json`` (a JSON document whose string values are templates), ``form`` (``nome=valor``
            lines) or ``none``.
        auth, auth_secret, auth_username, auth_header: bearer / basic / a custom header, with a workspace secret.
        sign_secret: a workspace secret (``whsec_...``) to sign the call the Standard Webhooks way.
        timeout_s: per try, 1 to 60 seconds.
        mapping: ``caminho -> destino`` lines: a JSON path of the answer and where to store its value.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Annotated[TemplateStr, Field(min_length=1, max_length=2_000)]
    query: Annotated[list[str], Field(max_length=MAX_LINES)] = Field(default_factory=list)
    headers: Annotated[list[str], Field(max_length=MAX_LINES)] = Field(default_factory=list)
    body_kind: Literal["none", "json", "form"] = "json"
    body: Annotated[str, Field(max_length=MAX_BODY_CHARS)] = ""
    auth: Literal["none", "bearer", "basic", "header"] = "none"
    auth_secret: Annotated[str, Field(max_length=64)] | None = None
    auth_username: Annotated[str, Field(max_length=200)] | None = None
    auth_header: Annotated[str, Field(max_length=64)] | None = None
    sign_secret: Annotated[str, Field(max_length=64)] | None = None
    timeout_s: int = Field(10, ge=1, le=60)
    mapping: Annotated[list[str], Field(max_length=MAX_LINES)] = Field(default_factory=list)

    @field_validator("query")
    @classmethod
    def _query(cls, lines: list[str]) -> list[str]:
        return _pairs(lines, "=", _PARAM_NAME, "query_line")

    @field_validator("headers")
    @classmethod
    def _headers(cls, lines: list[str]) -> list[str]:
        return _pairs(lines, ":", _HEADER_NAME, "header_line")

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, lines: list[str]) -> list[str]:
        for line in lines:
            pair = _split(line, "->")
            if pair is None or not pair[0]:
                raise PydanticCustomError("mapping_line", t("node.webhook.error.mapping_line"), {"line": line[:80]})
            _check_target(pair[1])
        return lines

    @model_validator(mode="after")
    def _check(self) -> WebhookData:
        if self.body_kind == "json" and self.body.strip():
            try:
                document = json.loads(self.body)
            except ValueError as exc:
                raise PydanticCustomError("body_json", t("node.webhook.error.body_json")) from exc
            for leaf in _leaves(document):
                check_template(leaf)
        if self.body_kind == "form":
            _pairs(self.body.splitlines(), "=", _PARAM_NAME, "form_line")
        if self.auth != "none" and not (self.auth_secret or "").strip():
            raise PydanticCustomError("auth_secret_missing", t("node.webhook.error.auth_secret_missing"))
        if self.auth == "header" and not _HEADER_NAME.match((self.auth_header or "").strip()):
            raise PydanticCustomError("auth_header_missing", t("node.webhook.error.auth_header_missing"))
        return self


class WebhookNode(NodeBase):
    """Schema of a ``webhook`` node."""

    type: Literal["webhook"]
    data: WebhookData


def wait_limit_s(timeout_s: int) -> int:
    """The step's overall limit: every try at its timeout, the backoffs between them and room in the queue."""
    return MAX_ATTEMPTS * timeout_s + 120


class _RenderError(Exception):
    pass


def _render(template: str, ctx: ExecutionContext, logs: list[str]) -> str:
    rendered = render_text(template, ctx, t("run.what.webhook"))
    logs.extend(rendered.log)
    if rendered.error:
        raise _RenderError(rendered.error)
    return rendered.text


def _render_json(value: Any, ctx: ExecutionContext, logs: list[str]) -> Any:
    if isinstance(value, str):
        return _render(value, ctx, logs)
    if isinstance(value, Mapping):
        return {k: _render_json(v, ctx, logs) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, ctx, logs) for v in value]
    return value


def build_request(cfg: WebhookData, ctx: ExecutionContext) -> tuple[dict[str, Any], list[str]]:
    """The JSON-able request of ``workbench.services.http_call.perform`` (no secret in it) and the render log.

    Raises ``_RenderError`` when a template cannot be rendered.
    """
    logs: list[str] = []
    pairs = [_split(line, "=") for line in cfg.query]
    query = [[name, _render(value, ctx, logs)] for name, value in (p for p in pairs if p)]
    header_pairs = [_split(line, ":") for line in cfg.headers]
    headers = [[name, _render(value, ctx, logs)] for name, value in (p for p in header_pairs if p)]
    body: Any = None
    if cfg.body_kind == "json":
        body = _render_json(json.loads(cfg.body), ctx, logs) if cfg.body.strip() else {}
    elif cfg.body_kind == "form":
        form_pairs = [_split(line, "=") for line in cfg.body.splitlines()]
        body = [[name, _render(value, ctx, logs)] for name, value in (p for p in form_pairs if p)]
    mapping = []
    for line in cfg.mapping:
        pair = _split(line, "->")
        if pair:
            mapping.append({"path": pair[0], "target": _check_target(pair[1])})
    request = {"method": cfg.method, "url": _render(cfg.url, ctx, logs).strip(), "query": query, "headers": headers,
               "body_kind": cfg.body_kind, "body": body,
               "auth": {"kind": cfg.auth, "secret": cfg.auth_secret, "username": cfg.auth_username,
                        "header": cfg.auth_header},
               "sign_secret": cfg.sign_secret or None, "timeout_s": cfg.timeout_s, "mapping": mapping}
    return request, logs


def execute(node: WebhookNode, ctx: ExecutionContext) -> NodeResult:
    """Render the request and hand it to the calls pool; a template that cannot render takes ``falha`` at once."""
    try:
        request, logs = build_request(node.data, ctx)
    except _RenderError as exc:
        return NodeResult(output="falha", log=(str(exc),), data={"reason": "template"})
    return NodeResult(actions=(CallOutside("http", request),), log=tuple(logs),
                      wait=Wait(kind="call", timeout_s=wait_limit_s(node.data.timeout_s)))


def resume(node: WebhookNode, ctx: ExecutionContext, reply_text: str) -> NodeResult:
    """A message of the contact while the call runs: it stays in the conversation; keep waiting for the call."""
    return NodeResult(wait=Wait(kind="call", timeout_s=wait_limit_s(node.data.timeout_s)))


def on_result(node: WebhookNode, ctx: ExecutionContext, result: Mapping[str, Any]) -> NodeResult:
    """Store the mapped values and take ``sucesso`` on a 2xx; else ``falha`` with the status and the reason."""
    status = result.get("status")
    if result.get("ok") is not True:
        reason = str(result.get("error") or "falha")[:200]
        return NodeResult(output="falha", data={"status": status, "reason": reason},
                          log=(t("node.webhook.log.failed", status=status or "—", reason=reason),))
    values = result.get("values") if isinstance(result.get("values"), Mapping) else {}
    actions = tuple(store_value(_check_target(target), value) for target, value in values.items())
    missing = [str(p) for p in result.get("missing") or []]
    log = tuple(t("node.webhook.log.path_missing", path=path) for path in missing)
    return NodeResult(output="sucesso", actions=actions, data={"status": status}, log=log)


def on_timeout(node: WebhookNode, ctx: ExecutionContext) -> NodeResult:
    """The call did not finish within the step's limit."""
    return NodeResult(output="falha", data={"reason": "timeout"}, log=(t("node.webhook.log.timeout"),))


def both(data: Config) -> list[str]:
    """``sucesso`` and ``falha``."""
    return list(OUTPUTS)


def summary(data: Config) -> str:
    """Method and URL, e.g. "POST https://api.exemplo.com/leads"."""
    url = raw_text(data, "url")
    return f"{raw_text(data, 'method') or 'POST'} {url}" if url else ""


SPEC = NodeSpec(type="webhook", schema=WebhookNode, execute=execute, resume=resume, on_result=on_result,
                on_timeout=on_timeout, outputs=both, required_outputs=lambda data: ["sucesso"],
                waits=lambda data: True, summary=summary,
                default_data=lambda: {"method": "POST", "url": "", "body_kind": "json", "body": "{}",
                                      "timeout_s": 10},
                hints={"body": FieldHint(kind="long_text"), "auth_secret": FieldHint(source="secrets"),
                       "sign_secret": FieldHint(source="secrets")})
