"""Wait for reply: suspend until the contact answers, validate the answer, store it, or time out.

Parsing a reply yields a value (``Accepted`` or ``Rejected``), never an exception (Typebot's
Success/Fail parsers). A rejected reply is re-prompted up to ``max_retries`` times; after that the node
takes its ``invalid`` output when that has an edge, else the run ends with an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.core.matching import match_choice, normalize
from engine.core.nodes.base import (
    Action,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    SendText,
    TargetStr,
    TemplateStr,
    Wait,
    always_waits,
    check_wait_seconds,
    render_text,
    store_value,
)
from workbench.base.i18n import t

Validation = Literal["any", "number", "email", "phone", "date", "options"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
_NUMBER = re.compile(r"^[+-]?(\d+(?:[.,]\d+)*)$")
_DATE_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2}|\d{4}))?$")
_DATE_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


@dataclass(frozen=True)
class Accepted:
    """The reply is valid; ``value`` is what gets stored (normalised: number, ISO date, digits ...)."""

    value: Any


@dataclass(frozen=True)
class Rejected:
    """The reply is not valid; ``reason`` is for the log."""

    reason: str


ParsedReply = Accepted | Rejected


def parse_number(text: str) -> int | float | None:
    """Parse "42", "1.234,56", "1,5", "R$ 10" (pt-BR and plain notations); None when not a number."""
    cleaned = re.sub(r"(?i)^r\$\s*", "", text.strip()).replace(" ", "")
    match = _NUMBER.match(cleaned)
    if not match:
        return None
    body = cleaned
    if "," in body and "." in body:
        decimal = "," if body.rfind(",") > body.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        body = body.replace(thousands, "").replace(decimal, ".")
    elif "," in body:
        if body.count(",") > 1:
            return None
        body = body.replace(",", ".")
    elif body.count(".") > 1 or re.fullmatch(r"[+-]?\d{1,3}\.\d{3}", body):
        # "1.234" / "1.234.567": pt-BR thousands separators
        if not re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+", body):
            return None
        body = body.replace(".", "")
    value = float(body)
    return int(value) if value.is_integer() and "." not in body else value


def parse_email(text: str) -> str | None:
    """An e-mail address in lower case ("Ana@Exemplo.com.br" -> "ana@exemplo.com.br"); None when it is not one."""
    email = text.strip().lower()
    return email if _EMAIL.match(email) and ".." not in email else None


_YES = frozenset({"sim", "s", "yes", "y", "true", "verdadeiro", "1"})
_NO = frozenset({"nao", "n", "no", "false", "falso", "0"})


def parse_yes_no(text: str) -> bool | None:
    """"sim"/"não" (also s/n, yes/no, true/false, verdadeiro/falso, 1/0; any case or accent); None otherwise."""
    word = normalize(text)
    return True if word in _YES else False if word in _NO else None


def local_today(ctx: ExecutionContext) -> date:
    """Today's date in the workspace's zone (the context's instant's own date when the zone is unknown)."""
    try:
        return ctx.now.astimezone(ZoneInfo(ctx.timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return ctx.now.date()


def parse_date(text: str, today: date) -> date | None:
    """Parse "25/12/2025", "25-12-25", "25/12" (this year), "2025-12-25", "hoje", "amanhã"; None if invalid."""
    norm = normalize(text)
    if norm == "hoje":
        return today
    if norm == "amanha":
        return today + timedelta(days=1)
    try:
        if m := _DATE_ISO.match(norm):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DATE_DMY.match(norm):
            year = int(m[3]) if m[3] else today.year
            if m[3] and len(m[3]) == 2:
                year += 2000
            return date(year, int(m[2]), int(m[1]))
    except ValueError:
        return None
    return None


def parse_reply(cfg: WaitReplyData, text: str, ctx: ExecutionContext) -> ParsedReply:
    """Validate one reply against the node's rule."""
    stripped = (text or "").strip()
    if not stripped:
        return Rejected(t("node.wait_reply.reject.empty"))
    if cfg.validation == "any":
        return Accepted(stripped)
    if cfg.validation == "number":
        number = parse_number(stripped)
        return Accepted(number) if number is not None else Rejected(t("node.wait_reply.reject.number"))
    if cfg.validation == "email":
        email = parse_email(stripped)
        return Accepted(email) if email else Rejected(t("node.wait_reply.reject.email"))
    if cfg.validation == "phone":
        if re.search(r"[^\d\s()+.\-]", stripped):
            return Rejected(t("node.wait_reply.reject.phone_characters"))
        digits = re.sub(r"\D", "", stripped)
        return Accepted(digits) if 8 <= len(digits) <= 15 else Rejected(t("node.wait_reply.reject.phone_digits"))
    if cfg.validation == "date":
        parsed = parse_date(stripped, local_today(ctx))
        return Accepted(parsed.isoformat()) if parsed else Rejected(t("node.wait_reply.reject.date"))
    index = match_choice(stripped, cfg.options)
    return Accepted(cfg.options[index]) if index is not None else Rejected(t("node.wait_reply.reject.options"))


class WaitReplyData(NodeData):
    """How to wait for and check a reply.

    Attributes:
        save_to: where the accepted reply goes: ``vars.X``, ``contact.name`` or ``contact.custom_data.X``.
        validation: ``any``, ``number``, ``email``, ``phone``, ``date`` (stored ISO) or ``options``.
        options: accepted answers for ``options`` (matched by text or by number, accent-insensitive).
        retry_prompt: sent after an invalid reply (template); otherwise the catalog's prompt for the validation.
        max_retries: re-prompts before giving up (then ``invalid``, or the run fails).
        timeout_s: seconds without a reply before ``timeout``; None waits forever.
    """

    save_to: TargetStr | None = None
    validation: Validation = "any"
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=50)
    retry_prompt: TemplateStr | None = Field(default=None, max_length=4_000)
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float | None = None

    @field_validator("timeout_s")
    @classmethod
    def _check_timeout(cls, value: float | None) -> float | None:
        return check_wait_seconds(value)

    @model_validator(mode="after")
    def _check_options(self) -> WaitReplyData:
        if self.validation == "options" and not self.options:
            raise PydanticCustomError("options_missing", t("node.wait_reply.error.options_missing"))
        return self


class WaitReplyNode(NodeBase):
    """Schema of a ``wait_reply`` node."""

    type: Literal["wait_reply"]
    data: WaitReplyData = Field(default_factory=WaitReplyData)


def outputs(data: Config) -> list[str]:
    """``next``, ``invalid`` and, with a timeout, ``timeout``."""
    return ["next", "invalid"] + (["timeout"] if data.get("timeout_s") else [])


def required_outputs(data: Config) -> list[str]:
    """``next`` always; ``timeout`` when a timeout is set (``invalid`` is optional)."""
    return ["next"] + (["timeout"] if data.get("timeout_s") else [])


def execute(node: WaitReplyNode, ctx: ExecutionContext) -> NodeResult:
    """Suspend until the contact replies (or the timeout passes)."""
    return NodeResult(wait=Wait("reply", timeout_s=node.data.timeout_s))


def retry_text(cfg: WaitReplyData, ctx: ExecutionContext) -> tuple[str, tuple[str, ...], str | None]:
    """The re-prompt text for an invalid reply: (text, log, error)."""
    if cfg.retry_prompt:
        rendered = render_text(cfg.retry_prompt, ctx, t("run.what.retry_prompt"))
        return rendered.text, rendered.log, rendered.error
    return t(f"node.wait_reply.retry.{cfg.validation}", options=", ".join(cfg.options)), (), None


def resume(node: WaitReplyNode, ctx: ExecutionContext, reply_text: str) -> NodeResult:
    """Check the reply: store it and go ``next``; or re-prompt and keep waiting; or give up."""
    cfg = node.data
    parsed = parse_reply(cfg, reply_text, ctx)
    if isinstance(parsed, Accepted):
        actions: tuple[Action, ...] = (store_value(cfg.save_to, parsed.value),) if cfg.save_to else ()
        return NodeResult(output="next", actions=actions, data={"value": parsed.value})
    attempts = ctx.attempts + 1
    log = (t("node.wait_reply.log.invalid", reason=parsed.reason, attempt=attempts),)
    if ctx.attempts < cfg.max_retries:
        text, render_log, error = retry_text(cfg, ctx)
        if error:
            return NodeResult(log=log + render_log, error=error)
        return NodeResult(actions=(SendText(text),) if text.strip() else (), log=log + render_log,
                          wait=Wait("reply", timeout_s=cfg.timeout_s, attempts=attempts))
    if ctx.is_connected("invalid"):
        return NodeResult(output="invalid", log=log + (t("run.retries_exhausted"),))
    return NodeResult(log=log, error=t("node.wait_reply.error.retries", retries=cfg.max_retries))


def on_timeout(node: WaitReplyNode, ctx: ExecutionContext) -> NodeResult:
    """No reply in time: take ``timeout`` (ends the run quietly when that output has no edge)."""
    return NodeResult(output="timeout", log=(t("run.timeout"),))


def summary(data: Config) -> str:
    """The kind of answer expected, and where it is saved."""
    validation = data.get("validation", "any")
    text = SPEC.choice_label("validation", validation) if isinstance(validation, str) else ""
    return f"{text} → {data['save_to']}" if data.get("save_to") else text


SPEC = NodeSpec(type="wait_reply", schema=WaitReplyNode, execute=execute, outputs=outputs,
                required_outputs=required_outputs, waits=always_waits, resume=resume, on_timeout=on_timeout,
                summary=summary, default_data=lambda: {"validation": "any"},
                hints={"retry_prompt": FieldHint(kind="long_text"),
                       "save_to": FieldHint(kind="field_target", source="contact_fields")})
