"""Send choices: a question with options (numbered text or a poll), then wait for the pick.

One output per option key, so the canvas routes each answer with an edge labelled by that key. A reply
picks an option by its number ("2", "2️⃣", "opção 2") or by its text, accent- and case-insensitively; a
poll vote arrives as the option's text. Unmatched replies are re-prompted up to ``max_retries`` times, then
``no_match`` (or the run fails when that output has no edge).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.core.matching import match_choice, normalize
from engine.core.nodes.base import (
    OUTPUT_PATTERN,
    Action,
    Config,
    ExecutionContext,
    FieldHint,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    SendPoll,
    SendText,
    TargetStr,
    TemplateStr,
    Wait,
    always_waits,
    check_wait_seconds,
    raw_list,
    raw_text,
    render_text,
    store_value,
)
from workbench.base.i18n import t

RESERVED_OUTPUTS = ("timeout", "no_match")


class Choice(NodeData):
    """One option: ``key`` labels its edge; ``label`` is what the contact sees (template)."""

    key: Annotated[str, Field(pattern=OUTPUT_PATTERN)]
    label: Annotated[TemplateStr, Field(min_length=1, max_length=100)]


class SendChoicesData(NodeData):
    """The question and its options.

    Attributes:
        prompt: the question (template).
        options: 1 to 12 options with unique keys.
        mode: ``numbered_text`` ("1. Vendas" lines under the prompt) or ``poll`` (a WhatsApp poll; the
            runtime falls back to the numbered text where polls are not delivered).
        save_to: optional place to store the chosen label (``vars.X`` / ``contact...``).
        retry_prompt: sent, followed by the options again, after an unmatched reply (template).
        max_retries: re-prompts before ``no_match``.
        timeout_s: seconds without a reply before ``timeout``; None waits forever.
        typing: show "digitando..." before sending.
    """

    prompt: Annotated[TemplateStr, Field(min_length=1, max_length=4_000)]
    options: list[Choice] = Field(min_length=1, max_length=12)
    mode: Literal["numbered_text", "poll"] = "numbered_text"
    save_to: TargetStr | None = None
    retry_prompt: TemplateStr | None = Field(default=None, max_length=4_000)
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float | None = None
    typing: bool = True

    @field_validator("timeout_s")
    @classmethod
    def _check_timeout(cls, value: float | None) -> float | None:
        return check_wait_seconds(value)

    @model_validator(mode="after")
    def _check_keys(self) -> SendChoicesData:
        seen: set[str] = set()
        for option in self.options:
            key = option.key.lower()
            if key in RESERVED_OUTPUTS:
                raise PydanticCustomError("option_key_reserved", t("node.send_choices.error.option_key_reserved"),
                                          {"key": option.key})
            if key in seen:
                raise PydanticCustomError("option_key_duplicate", t("node.send_choices.error.option_key_duplicate"),
                                          {"key": option.key})
            seen.add(key)
        labels = [normalize(o.label) for o in self.options]
        if len(set(labels)) != len(labels):
            raise PydanticCustomError("option_label_duplicate", t("node.send_choices.error.option_label_duplicate"))
        return self


class SendChoicesNode(NodeBase):
    """Schema of a ``send_choices`` node."""

    type: Literal["send_choices"]
    data: SendChoicesData


def _option_keys(data: Config) -> list[str]:
    keys = [o["key"] for o in raw_list(data, "options") if isinstance(o, dict) and isinstance(o.get("key"), str)
            and o["key"]]
    return list(dict.fromkeys(keys))


def outputs(data: Config) -> list[str]:
    """One output per option key, ``no_match``, and ``timeout`` when a timeout is set."""
    return _option_keys(data) + ["no_match"] + (["timeout"] if data.get("timeout_s") else [])


def required_outputs(data: Config) -> list[str]:
    """Every option key; ``timeout`` when set (``no_match`` is optional)."""
    return _option_keys(data) + (["timeout"] if data.get("timeout_s") else [])


def numbered_text(prompt: str, labels: list[str]) -> str:
    """``prompt`` followed by "1. Label" lines: the format replies are matched against."""
    lines = "\n".join(f"{i}. {label}" for i, label in enumerate(labels, start=1))
    return f"{prompt}\n\n{lines}" if prompt else lines


def _labels(node: SendChoicesNode, ctx: ExecutionContext) -> tuple[list[str], list[str], str | None]:
    labels, log = [], []
    for option in node.data.options:
        rendered = render_text(option.label, ctx, t("run.what.option", option=option.key))
        log += rendered.log
        if rendered.error:
            return [], log, rendered.error
        labels.append(rendered.text.strip() or option.key)
    return labels, log, None


def _ask(node: SendChoicesNode, ctx: ExecutionContext, prompt: str, attempts: int, log: list[str]) -> NodeResult:
    labels, label_log, error = _labels(node, ctx)
    log = log + label_log
    if error:
        return NodeResult(log=tuple(log), error=error)
    cfg = node.data
    fallback = numbered_text(prompt, labels)
    action: Action
    if cfg.mode == "poll":
        action = SendPoll(prompt, tuple(labels), fallback, typing=cfg.typing)
    else:
        action = SendText(fallback, typing=cfg.typing)
    return NodeResult(actions=(action,), log=tuple(log), wait=Wait("reply", timeout_s=cfg.timeout_s, attempts=attempts),
                      data={"options": labels})


def execute(node: SendChoicesNode, ctx: ExecutionContext) -> NodeResult:
    """Send the question with its options and wait for the pick."""
    prompt = render_text(node.data.prompt, ctx, t("run.what.prompt"))
    if prompt.error:
        return NodeResult(log=prompt.log, error=prompt.error)
    return _ask(node, ctx, prompt.text, 0, list(prompt.log))


def resume(node: SendChoicesNode, ctx: ExecutionContext, reply_text: str) -> NodeResult:
    """Match the reply to an option: follow its key; or re-ask; or ``no_match``."""
    cfg = node.data
    labels, log, error = _labels(node, ctx)
    if error:
        return NodeResult(log=tuple(log), error=error)
    index = match_choice(reply_text, labels, [o.key for o in cfg.options])
    if index is not None:
        option = cfg.options[index]
        actions: tuple[Action, ...] = (store_value(cfg.save_to, labels[index]),) if cfg.save_to else ()
        return NodeResult(output=option.key, actions=actions, log=tuple(log),
                          data={"choice": option.key, "label": labels[index]})
    attempts = ctx.attempts + 1
    log.append(t("node.send_choices.log.no_match", attempt=attempts))
    if ctx.attempts < cfg.max_retries:
        retry = render_text(cfg.retry_prompt or t("node.send_choices.retry"), ctx, t("run.what.retry_prompt"))
        if retry.error:
            return NodeResult(log=tuple(log) + retry.log, error=retry.error)
        return _ask(node, ctx, retry.text, attempts, log + list(retry.log))
    if ctx.is_connected("no_match"):
        return NodeResult(output="no_match", log=tuple(log) + (t("run.retries_exhausted"),))
    return NodeResult(log=tuple(log), error=t("node.send_choices.error.no_choice", retries=cfg.max_retries))


def on_timeout(node: SendChoicesNode, ctx: ExecutionContext) -> NodeResult:
    """No pick in time: take ``timeout``."""
    return NodeResult(output="timeout", log=(t("run.timeout"),))


def summary(data: Config) -> str:
    """The question and the options' labels."""
    labels = [str(o.get("label", "")) for o in raw_list(data, "options") if isinstance(o, dict)]
    return f"{raw_text(data, 'prompt')} [{' / '.join(labels)}]"


def default_data() -> dict[str, Any]:
    """An empty question with two options to rename."""
    return {"prompt": "", "options": [{"key": f"op{n}", "label": t("node.send_choices.default.option", n=n)}
                                      for n in (1, 2)]}


SPEC = NodeSpec(type="send_choices", schema=SendChoicesNode, execute=execute, outputs=outputs,
                required_outputs=required_outputs, waits=always_waits, resume=resume, on_timeout=on_timeout,
                summary=summary, default_data=default_data,
                hints={"prompt": FieldHint(kind="long_text"), "retry_prompt": FieldHint(kind="long_text")})
