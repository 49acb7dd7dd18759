"""What every node type shares: the schema base, the execution context, results, actions, waits and ``NodeSpec``.

The contract (docs/nodes.md): a node module holds a pydantic schema (``type: Literal[...]`` plus its
configuration in ``data``, which is where the canvas keeps it), a pure ``execute(node, ctx) -> NodeResult`` and
a ``SPEC``. Waiting nodes also have ``resume(node, ctx, reply_text)`` and ``on_timeout(node, ctx)``.
Executors never touch a database or the network: they *describe* what should happen (``actions``), where
to go next (``output``, an edge label) and whether to suspend (``wait``); the runtime applies all of it in
one transaction.

Run protocol for the runtime (state = current node id, variables, status, wait token/deadline, attempts):

- ``result.error`` set -> the run fails (status ``failed``), after applying ``actions``.
- ``result.wait`` set -> apply ``actions``, store ``wait.attempts`` and the deadline
  (``wait.deadline(now)``), stay on this node with status ``waiting``. A reply calls the node's
  ``resume`` (if it has none, the reply does not belong to this run); the deadline calls ``on_timeout``; the
  result of a ``CallOutside`` action calls ``on_result``.
- otherwise ``result.output`` names the edge to follow; None, or a label with no edge, ends the run
  (status ``completed``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from engine.core.matching import regex_problem
from engine.core.templates import check_syntax, render
from workbench.base.clock import DEFAULT_TIMEZONE
from workbench.base.i18n import has_key, t

MAX_WAIT_SECONDS = 30 * 24 * 3600
"""Longest delay or reply timeout a node may ask for (30 days)."""
OUTPUT_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
"""Edge labels are stored in funnel events (``output`` varchar(32))."""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


# -- schema building blocks ----------------------------------------------------------------------------------

def check_template(value: str) -> str:
    """Refuse a template with a syntax error (pt-BR message from the catalog)."""
    problem = check_syntax(value)
    if problem:
        raise PydanticCustomError("template_syntax", t("node.error.template_syntax"), {"problem": problem})
    return value


TemplateStr = Annotated[str, AfterValidator(check_template)]
"""A text field rendered by ``engine.core.templates.render``; its syntax is checked when the node is validated."""


PUBLISHED = "published"
"""Validation context key (``model_validate(..., context={PUBLISHED: True})``) set when a published version is
loaded to run (``engine.core.definition.load_definition``): what was published keeps running even when a check
added later would refuse it in a draft."""


def regex_refusal(pattern: str, info: ValidationInfo) -> str | None:
    """``regex_problem`` for a draft; None when loading a published version.

    A version published while patterns ran on Python's ``re`` may hold one RE2 cannot run (a backreference):
    it loads, never matches, and the condition's log says why; the draft still shows the problem in the editor.
    """
    if info.context and info.context.get(PUBLISHED):
        return None
    return regex_problem(pattern)


def _check_target(value: str) -> str:
    value = value.strip()
    parts = value.split(".")
    if len(parts) == 1 and _NAME.match(value):
        return f"vars.{value}"
    if len(parts) == 2 and parts[0] == "vars" and _NAME.match(parts[1]):
        return value
    if value == "contact.name":
        return value
    if len(parts) == 3 and parts[:2] == ["contact", "custom_data"] and _NAME.match(parts[2]):
        return value
    raise PydanticCustomError("target_invalid", t("node.error.target_invalid"), {"value": value})


TargetStr = Annotated[str, AfterValidator(_check_target)]
"""Where a value is stored: ``vars.X``, ``contact.name`` or ``contact.custom_data.X`` (bare ``X`` = ``vars.X``)."""


class Position(BaseModel):
    """Where the canvas draws the node."""

    model_config = ConfigDict(extra="ignore")
    x: float = 0.0
    y: float = 0.0


class NodeData(BaseModel):
    """Base of every node's configuration. Unknown keys are ignored: the canvas adds its own (``content``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class NodeBase(BaseModel):
    """Fields every node has, as streamlit-flow stores them; subclasses add ``type`` and ``data``."""

    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, Field(min_length=1, max_length=64)]
    position: Position = Field(default_factory=Position)


# -- actions: what the runtime must do, in order -------------------------------------------------------------

@dataclass(frozen=True)
class SendText:
    """Send a text message (after a typing indicator when ``typing``)."""

    text: str
    typing: bool = True
    kind: Literal["send_text"] = "send_text"


@dataclass(frozen=True)
class SendMedia:
    """Send a stored media item (``media`` table id) with an optional caption."""

    media_id: int | str
    media_kind: Literal["image", "audio", "video", "document"]
    caption: str | None = None
    typing: bool = True
    kind: Literal["send_media"] = "send_media"


@dataclass(frozen=True)
class SendPoll:
    """Send a single-choice poll; a transport without polls sends ``fallback_text`` (numbered options)."""

    question: str
    options: tuple[str, ...]
    fallback_text: str
    typing: bool = True
    kind: Literal["send_poll"] = "send_poll"


@dataclass(frozen=True)
class AddTag:
    """Put a tag on the contact (creating the workspace tag if needed)."""

    name: str
    kind: Literal["add_tag"] = "add_tag"


@dataclass(frozen=True)
class RemoveTag:
    """Take a tag off the contact (no-op when absent)."""

    name: str
    kind: Literal["remove_tag"] = "remove_tag"


@dataclass(frozen=True)
class SetContactField:
    """Update the contact: ``field`` is ``name`` or ``custom_data.<key>``.

    ``source``: where the value came from when not typed by a person, e.g. an AI step's provenance
    (``{"by": "ai", "node": ..., "model": ..., "message_id": ..., "message_at": ...}``); recorded with the change.
    """

    field: str
    value: Any
    source: Mapping[str, Any] | None = None
    kind: Literal["set_contact_field"] = "set_contact_field"


@dataclass(frozen=True)
class SetVariable:
    """Set a run variable (``{{vars.<name>}}``)."""

    name: str
    value: Any
    kind: Literal["set_variable"] = "set_variable"


@dataclass(frozen=True)
class Notify:
    """Notify people in the panel: a team (by id, or by name when imported without ids) or a user; ``email``
    also e-mails them."""

    text: str
    team_id: int | None = None
    user_id: int | None = None
    team_name: str | None = None
    email: bool = False  # also e-mail the person or the team's members (after commit, in a job with retries)
    kind: Literal["notify"] = "notify"


@dataclass(frozen=True)
class Route:
    """Assign the conversation to a team and/or agent; optionally pause the bot (for ``pause_minutes``)."""

    team_id: int | None = None
    agent_id: int | None = None
    team_name: str | None = None
    pause_bot: bool = True
    pause_minutes: int | None = None
    kind: Literal["route"] = "route"


@dataclass(frozen=True)
class StartFunnel:
    """Start another funnel for this conversation (the current run has ended)."""

    funnel_id: int
    kind: Literal["start_funnel"] = "start_funnel"


@dataclass(frozen=True)
class CallOutside:
    """Ask the runtime to call something outside (a model, an HTTP endpoint, Odoo) away from the drain.

    The node returns it together with a ``Wait(kind="call")``: the run waits on the node, the runtime stores the
    call (``outside_calls``) in the same transaction and an executor of ``service`` runs it in the calls pool
    (``workbench/services/outside_calls.py``). When it finishes the node's ``on_result`` gets the executor's
    answer, or ``{"ok": False, "error": ..., "kind": ...}`` after the last retry.

    Attributes:
        service: ``ai``, ``http`` or ``odoo`` (a key of ``outside_calls.EXECUTORS``).
        request: JSON-able and without secrets: the executor looks secrets up by id or name.
    """

    service: str
    request: Mapping[str, Any]
    kind: Literal["call_outside"] = "call_outside"


Action = SendText | SendMedia | SendPoll | AddTag | RemoveTag | SetContactField | SetVariable | Notify | Route \
    | StartFunnel | CallOutside


@dataclass(frozen=True)
class Wait:
    """Suspend the run on the current node.

    Attributes:
        kind: ``reply`` (resume on the contact's next message, or time out), ``timer`` (resume at
            ``resume_at`` by calling the node's ``on_timeout``) or ``call`` (an outside call is pending: its
            result goes to the node's ``on_result``; a reply meanwhile goes to ``resume``, and a ``call`` wait
            returned from there keeps the pending call's wait token and deadline).
        timeout_s: for ``reply`` and ``call``: seconds before ``on_timeout`` is called; None waits forever.
        resume_at: for ``timer``: the aware instant to continue.
        attempts: invalid replies already received on this node; store it (``funnel_runs.attempts``) and
            pass it back as ``ExecutionContext.attempts`` on resume.
    """

    kind: Literal["reply", "timer", "call"]
    timeout_s: float | None = None
    resume_at: datetime | None = None
    attempts: int = 0

    def deadline(self, now: datetime) -> datetime | None:
        """The instant at which ``on_timeout`` is due, or None when the wait has no deadline."""
        if self.kind == "timer":
            return self.resume_at
        return now + timedelta(seconds=self.timeout_s) if self.timeout_s else None


@dataclass(frozen=True)
class NodeResult:
    """What one node execution decided. Built by executors; never mutated.

    Attributes:
        output: the edge label to follow; None ends the run (ignored while ``wait`` is set).
        actions: side effects for the runtime to apply, in order.
        wait: suspend here instead of moving on.
        log: human-readable notes for the funnel event (pt-BR), e.g. missing template values.
        error: why the node failed; the run ends as ``failed``.
        data: small JSON-able facts for the funnel event (matched rule group, chosen option, ...).
    """

    output: str | None = None
    actions: tuple[Action, ...] = ()
    wait: Wait | None = None
    log: tuple[str, ...] = ()
    error: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> dict[str, Any]:
        """Run-variable updates carried by the ``SetVariable`` actions (later ones win)."""
        return {a.name: a.value for a in self.actions if isinstance(a, SetVariable)}

    @property
    def outcome(self) -> Literal["error", "wait", "next", "end"]:
        """``error``, ``wait``, ``next`` (follow ``output``) or ``end``."""
        if self.error is not None:
            return "error"
        if self.wait is not None:
            return "wait"
        return "next" if self.output is not None else "end"


# -- context ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contact:
    """The contact as executors see it."""

    name: str | None = None
    phone: str | None = None
    custom_data: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Contact:
        """Build from a plain dict with keys name, phone, custom_data, tags (all optional)."""
        raw = raw or {}
        return cls(name=raw.get("name"), phone=raw.get("phone"), custom_data=dict(raw.get("custom_data") or {}),
                   tags=tuple(raw.get("tags") or ()))


@dataclass(frozen=True)
class HistoryEntry:
    """One recent message: ``in`` from the contact, ``out`` from the bot or an agent (``author``)."""

    direction: Literal["in", "out"]
    text: str
    author: str | None = None


@dataclass(frozen=True)
class ExecutionContext:
    """Everything an executor may read. Immutable; ``with_result`` gives the context for the next node.

    Attributes:
        now: the current instant (timezone-aware); executors never read the clock themselves.
        variables: the run's variables (``{{vars.X}}``).
        contact: the contact (a ``Contact`` or a dict with name/phone/custom_data/tags).
        trigger_message: text of the message that started the run (``{{trigger.message}}``).
        last_reply: the latest reply the run received (condition source ``last_reply``).
        funnel_name: ``{{funnel.name}}``.
        timezone: the workspace's IANA zone, used by business hours and date replies.
        history: recent messages, oldest first (``{{history}}``).
        attempts: invalid replies already received on the current waiting node (from the run row).
        connected_outputs: outputs of the current node that have an edge (``FunnelDefinition.
            connected_outputs``); None means unknown, treated as "all connected".
        rng: randomness source (delay jitter); pass a seeded ``random.Random`` for reproducible runs.
        field_types: contact field key -> its type in the workspace's definitions (``number``, ``date``,
            ``boolean``, ...; ``workbench.services.contact_fields``); keys absent are free-form text. Conditions
            compare typed fields by their type.
    """

    now: datetime
    variables: Mapping[str, Any] = field(default_factory=dict)
    contact: Contact = field(default_factory=Contact)
    trigger_message: str | None = None
    last_reply: str | None = None
    funnel_name: str = ""
    timezone: str = DEFAULT_TIMEZONE
    history: Sequence[HistoryEntry | Mapping[str, Any]] = ()
    attempts: int = 0
    connected_outputs: frozenset[str] | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    field_types: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("ExecutionContext.now must be timezone-aware")
        if not isinstance(self.contact, Contact):
            object.__setattr__(self, "contact", Contact.from_dict(self.contact))  # type: ignore[arg-type]

    def is_connected(self, output: str) -> bool:
        """Whether ``output`` of the current node leads somewhere (True when unknown)."""
        return self.connected_outputs is None or output in self.connected_outputs

    def with_result(self, result: NodeResult) -> ExecutionContext:
        """The context after ``result``'s variable, tag and contact-field actions, as the next node sees it."""
        variables = dict(self.variables)
        tags = list(self.contact.tags)
        name, custom = self.contact.name, dict(self.contact.custom_data)
        for action in result.actions:
            if isinstance(action, SetVariable):
                variables[action.name] = action.value
            elif isinstance(action, AddTag) and action.name not in tags:
                tags.append(action.name)
            elif isinstance(action, RemoveTag):
                tags = [t for t in tags if t != action.name]
            elif isinstance(action, SetContactField):
                if action.field == "name":
                    name = action.value
                elif action.field.startswith("custom_data."):
                    custom[action.field.removeprefix("custom_data.")] = action.value
        contact = replace(self.contact, name=name, custom_data=custom, tags=tuple(tags))
        return replace(self, variables=variables, contact=contact, attempts=0, connected_outputs=None)


# -- helpers shared by executors ---------------------------------------------------------------------------------

def read_value(ctx: ExecutionContext, source: str) -> Any:
    """Read ``last_reply``, ``trigger.message``, ``tags``, ``vars.X``, ``contact.name|phone`` or
    ``contact.custom_data.X`` from the context; None when absent."""
    if source == "last_reply":
        return ctx.last_reply
    if source == "trigger.message":
        return ctx.trigger_message
    if source == "tags":
        return list(ctx.contact.tags)
    if source.startswith("vars."):
        return ctx.variables.get(source[5:])
    if source == "contact.name":
        return ctx.contact.name
    if source == "contact.phone":
        return ctx.contact.phone
    if source.startswith("contact.custom_data."):
        return ctx.contact.custom_data.get(source.removeprefix("contact.custom_data."))
    return None


def store_value(target: str, value: Any) -> Action:
    """The action that stores ``value`` at a validated ``TargetStr``."""
    if target.startswith("vars."):
        return SetVariable(target[5:], value)
    return SetContactField(target.removeprefix("contact."), value)


@dataclass(frozen=True)
class Rendered:
    """A rendered text plus the log lines it produced (missing values, truncation)."""

    text: str
    log: tuple[str, ...] = ()
    error: str | None = None


def render_text(template: str | None, ctx: ExecutionContext, what: str | None = None) -> Rendered:
    """Render one node field, turning missing values and truncation into log lines (pt-BR).

    ``what`` names the field in those lines (from the catalog, ``run.what.*``; "texto" when not given).
    """
    if not template:
        return Rendered("")
    result = render(template, ctx)
    name = what or t("run.what.text")
    log = tuple(t("run.value_missing", what=name, path=path) for path in result.missing)
    if result.truncated:
        log += (t("run.truncated", what=name),)
    if result.error:
        return Rendered("", log, t("run.render_error", what=name, error=result.error))
    return Rendered(result.text, log)


def check_wait_seconds(value: float | None) -> float | None:
    """Shared bound for timeouts and delays."""
    if value is not None and not 0 < value <= MAX_WAIT_SECONDS:
        raise PydanticCustomError("duration_invalid", t("node.error.duration_invalid"))
    return value


# -- the registry entry ------------------------------------------------------------------------------------------

Config = Mapping[str, Any]
"""A node's ``data`` as a draft holds it: possibly unfinished or malformed, so functions reading it are lenient."""


def raw_text(data: Config, name: str) -> str:
    """``data[name]`` as text for a summary ("" when absent or empty)."""
    return str(data.get(name) or "")


def raw_list(data: Config, name: str) -> list[Any]:
    """``data[name]`` when it is a list, else an empty list."""
    value = data.get(name)
    return value if isinstance(value, list) else []


def next_only(data: Config) -> list[str]:
    """Outputs of a node that simply continues."""
    return ["next"]


def no_outputs(data: Config) -> list[str]:
    """No outputs: for a node that ends the run, or as "no output is required"."""
    return []


def never_waits(data: Config) -> bool:
    """A node that runs through without suspending the run."""
    return False


def always_waits(data: Config) -> bool:
    """A node that always suspends the run (it waits for a reply)."""
    return True


@dataclass(frozen=True)
class FieldHint:
    """How the editor shows one configuration field; what is not said here is read from the schema.

    Attributes:
        kind: the field kind (``workbench.editor.node_forms.FIELD_KINDS``) when the schema's type does not say it:
            ``long_text`` (a text area), ``field_target`` (where a value is saved), ``rule_groups``,
            ``business_hours`` or ``media``.
        source: where the choices come from, for ids (or names) of the workspace's rows: ``teams``, ``people``,
            ``numbers``, ``media``, ``tags``, ``funnels``, ``contact_fields`` or ``ai_providers``
            (``pages/ui/fields.py`` resolves them).
    """

    kind: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class NodeSpec:
    """One registry entry: everything the validator, the runtime, the canvas and the editor need about a node type.

    The texts come from the catalog (``workbench/base/i18n.py``) by key: ``node.<type>.label`` and
    ``node.<type>.description``, ``node.<type>.field.<name>`` for each configuration field, and where they
    exist ``node.<type>.help.<name>`` (form help) and ``node.<type>.value.<name>.<choice>`` (a ``Literal``'s
    choices).

    Attributes:
        type: the ``type`` value.
        schema: the pydantic model of the whole node.
        execute: ``(node, ctx) -> NodeResult``.
        outputs: ``data -> list[str]``: every edge label the node may produce. It reads the raw configuration
            (``Config``) because the editor asks about unfinished nodes too; for a valid node it must give the
            same answer as for its parsed ``data``.
        required_outputs: ``data -> list[str]``: outputs that must have an edge to publish.
        waits: ``data -> bool``: whether executing it always suspends the run (what breaks a loop).
        resume: ``(node, ctx, reply_text) -> NodeResult`` for nodes that wait for a reply.
        on_timeout: ``(node, ctx) -> NodeResult`` for nodes whose wait has a deadline.
        on_result: ``(node, ctx, result) -> NodeResult`` for nodes that call outside (``CallOutside``): the
            executor's answer (a JSON-able mapping) when the call finished.
        is_start: the node type starts a funnel (exactly one per definition).
        summary: ``data -> str``: one line of plain text for the canvas box (the canvas escapes it).
        default_data: ``() -> dict``: the configuration a new node starts with. Required texts stay empty on
            purpose, so the new node shows a ⚠ until someone fills them in.
        hints: field name -> ``FieldHint``, for the fields whose schema type does not say how to edit them.
    """

    type: str
    schema: type[NodeBase]
    execute: Callable[[Any, ExecutionContext], NodeResult]
    outputs: Callable[[Config], list[str]] = next_only
    required_outputs: Callable[[Config], list[str]] = no_outputs
    waits: Callable[[Config], bool] = never_waits
    resume: Callable[[Any, ExecutionContext, str], NodeResult] | None = None
    on_timeout: Callable[[Any, ExecutionContext], NodeResult] | None = None
    on_result: Callable[[Any, ExecutionContext, Mapping[str, Any]], NodeResult] | None = None
    is_start: bool = False
    summary: Callable[[Config], str] = lambda data: ""
    default_data: Callable[[], dict[str, Any]] = dict
    hints: Mapping[str, FieldHint] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The pt-BR name: palette, canvas box, side panel, test chat."""
        return t(f"node.{self.type}.label")

    @property
    def description(self) -> str:
        """One pt-BR sentence on what the node does, shown with its form."""
        return t(f"node.{self.type}.description")

    @property
    def data_schema(self) -> type[NodeData]:
        """The pydantic model of the node's configuration (``data``)."""
        return self.schema.model_fields["data"].annotation  # type: ignore[return-value]

    def field_label(self, name: str) -> str:
        """The form label of configuration field ``name``."""
        return t(f"node.{self.type}.field.{name}")

    def field_help(self, name: str) -> str | None:
        """The form help of configuration field ``name``, if the catalog has one."""
        key = f"node.{self.type}.help.{name}"
        return t(key) if has_key(key) else None

    def choice_label(self, name: str, value: Any) -> str:
        """How a choice of field ``name`` reads (the value itself when the catalog has no label for it)."""
        key = f"node.{self.type}.value.{name}.{value}"
        return t(key) if has_key(key) else str(value)
