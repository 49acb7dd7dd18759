"""Demo history: contacts, conversations over the last days, funnel runs with drop-offs, agents with response
times, tags — the one generator behind ``python -m workbench demo-data`` and the benchmarks
(``bench/analytics.py``, ``bench/contacts.py``).

Realistic enough for the dashboards to be worth looking at: Brazilian names (Faker ``pt_BR``) and mobile
numbers, most contacts arriving on weekdays in the afternoon, funnels walked along their real published
definitions (a contact may stop answering at a question), handoffs to teams, replies that wait for business
hours, reassignments, closes and reopens. Rows are written with COPY (no per-row round trips) and every row
is recorded the way the services record it (``activity_events`` for assignments, handoffs and closes), so the
metrics read demo data exactly like real data.

Demo funnels are published but inactive and demo numbers stopped: demo data never answers a real contact.
"""

from __future__ import annotations

import json
import math
import random
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from faker import Faker
from sqlalchemy import select, text

from workbench.base.clock import now
from workbench.services.auth import Actor, create_user
from workbench.services.funnels import EXAMPLES
from workbench.store.db import get_engine, session_scope
from workbench.store.models import (
    ContactField,
    Funnel,
    FunnelVersion,
    Instance,
    Team,
    TeamMember,
    Workspace,
    WorkspaceMember,
)

TAGS = ["vip", "lead", "cliente", "inativo", "black-friday", "newsletter", "sp", "rj", "mg", "indicação",
        "orçamento", "pós-venda", "atacado", "varejo", "retorno", "reclamação", "parceiro", "evento", "whatsapp",
        "instagram"]
QUALIFIED = "ia_qualificado"
FIELDS = [("cidade", "Cidade", "text"), ("idade", "Idade", "number"), ("nascimento", "Nascimento", "date"),
          ("plano", "Plano", "choice"), ("cliente", "Cliente", "boolean"), ("origem", "Origem", "text")]
PLANS = ["bronze", "prata", "ouro", "diamante"]
SOURCES = ["site", "instagram", "indicação", "feira", "google", "facebook"]
TEAMS = ("Vendas", "Suporte", "Financeiro")
NUMBERS = ("Comercial", "Loja")
WAITING_TYPES = ("wait_reply", "send_choices")
# hour-of-day weights of a contact's first message (afternoons and early evenings are busiest)
HOURS = [1, 1, 1, 1, 1, 1, 2, 4, 8, 10, 11, 11, 9, 10, 11, 11, 10, 9, 8, 7, 6, 4, 3, 2]


@dataclass
class Sizes:
    """How much to generate: ``contacts`` over the last ``days``; ``messages`` is a target (None: what the
    simulated conversations say, about 8 per conversation)."""

    contacts: int = 2000
    days: int = 90
    messages: int | None = None
    agents: int = 8
    seed: int = 20261202


@dataclass
class _Rows:
    contacts: list[tuple] = field(default_factory=list)
    conversations: list[dict] = field(default_factory=list)
    messages: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    tags: list[tuple] = field(default_factory=list)


def generate(sizes: Sizes, workspace_id: int | None = None, name: str = "Demonstração") -> dict[str, Any]:
    """Fill a workspace (a new one named ``name`` when ``workspace_id`` is None) with demo history.

    Returns:
        ids: ``workspace``, ``admin`` and ``agent`` (Actors), ``instances``, ``agents``, ``teams``, ``funnels``
        (funnel id, version id) and the counts written.
    """
    rng = random.Random(sizes.seed)
    fake = Faker("pt_BR")
    fake.seed_instance(sizes.seed)
    setup = _setup(sizes, workspace_id, name, fake, rng)
    zone = ZoneInfo(setup["zone"])
    end = now()
    people = _people(sizes.contacts, fake, rng)
    rows = _Rows()
    raw = get_engine().raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            taken = {row[0] for row in cur.execute(
                "SELECT phone FROM contacts WHERE workspace_id = %s", (setup["workspace"],)).fetchall()}
            # reserve a block of ids (one per contact at most) so live traffic meanwhile takes others
            first_ids = {table: cur.execute(
                f"SELECT setval('{table}_id_seq', nextval('{table}_id_seq') + %s) - %s",
                (sizes.contacts, sizes.contacts)).fetchone()[0] for table in ("contacts", "conversations",
                                                                               "funnel_runs")}
        conn.commit()
        ids = dict(first_ids)
        per_conversation = None
        if sizes.messages is not None:
            per_conversation = max(1.0, sizes.messages / max(1, int(sizes.contacts * 0.95)))
        for person in people:
            phone = person["phone"]
            if phone in taken:
                continue
            taken.add(phone)
            created = _arrival(rng, end, sizes.days, zone)
            contact_id = ids["contacts"]
            ids["contacts"] += 1
            rows.contacts.append((contact_id, setup["workspace"], rng.choice(setup["instances"]), phone,
                                  person["name"], person["push_name"], person["email"], person["company"],
                                  json.dumps(person["custom"]), created, created))
            for tag in rng.sample(setup["tags"], rng.choice([0, 1, 1, 2, 2, 3])):
                rows.tags.append((contact_id, tag, created + timedelta(minutes=rng.randint(1, 600))))
            if rng.random() < 0.05:
                continue  # imported, never talked
            _conversation(rows, ids, setup, rng, contact_id, rows.contacts[-1][2], created, end, zone,
                          per_conversation)
        _write(conn, rows, setup)
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
        conn.commit()
    finally:
        raw.close()
    counts = {"contacts": len(rows.contacts), "conversations": len(rows.conversations),
              "messages": len(rows.messages), "funnel_runs": len(rows.runs),
              "funnel_events": sum(len(run["events"]) for run in rows.runs)}
    return {**setup, "counts": counts}


# -- the workspace ------------------------------------------------------------------------------------------------

def _setup(sizes: Sizes, workspace_id: int | None, name: str, fake: Faker, rng: random.Random) -> dict[str, Any]:
    """Teams, agents, numbers, fields, tags and funnels to attach history to (existing ones are reused)."""
    with session_scope() as s:
        if workspace_id is None:
            workspace = Workspace(name=name)
            s.add(workspace)
            s.flush()
        else:
            workspace = s.get(Workspace, workspace_id)
            if workspace is None:
                raise LookupError(f"workspace {workspace_id} not found")
        ws = workspace.id
        stamp = secrets.token_hex(3)
        admin_id = s.scalar(select(WorkspaceMember.user_id).where(WorkspaceMember.workspace_id == ws,
                                                                  WorkspaceMember.role == "admin"))
        if admin_id is None:
            admin_id = create_user(s, f"admin-{stamp}@demo.local", "Admin", secrets.token_urlsafe(18), ws,
                                   "admin").id
        teams = {t.name: t.id for t in s.scalars(select(Team).where(Team.workspace_id == ws))}
        for team_name in TEAMS:
            if team_name not in teams:
                team = Team(workspace_id=ws, name=team_name)
                s.add(team)
                s.flush()
                teams[team_name] = team.id
        # the demo's people: accounts nobody can sign in to (a random password nobody is told)
        agents = [create_user(s, f"agente{i}-{stamp}@demo.local", fake.name(), secrets.token_urlsafe(18), ws,
                              "agent").id for i in range(sizes.agents)]
        supervisor = create_user(s, f"supervisor-{stamp}@demo.local", fake.name(), secrets.token_urlsafe(18), ws,
                                 "supervisor").id
        team_of = {}
        for i, agent in enumerate(agents):
            team_of[agent] = list(teams.values())[i % len(teams)]
            s.add(TeamMember(team_id=team_of[agent], user_id=agent))
        instances = list(s.scalars(select(Instance.id).where(Instance.workspace_id == ws,
                                                             Instance.removed_at.is_(None))))
        if not instances:
            for number in NUMBERS:
                # stopped: the supervisor never starts a connector for a demo number
                instance = Instance(workspace_id=ws, name=number, transport="sandbox", desired_state="stopped")
                s.add(instance)
                s.flush()
                instances.append(instance.id)
        known = set(s.scalars(select(ContactField.key).where(ContactField.workspace_id == ws)))
        s.add_all(ContactField(workspace_id=ws, key=k, label=label, type=kind, position=i,
                               options=PLANS if kind == "choice" else [])
                  for i, (k, label, kind) in enumerate(FIELDS) if k not in known)
        tag_ids = {}
        for tag in [*TAGS, QUALIFIED]:
            tag_ids[tag] = s.execute(text(
                "INSERT INTO tags (workspace_id, name) VALUES (:w, :n) ON CONFLICT DO NOTHING RETURNING id"),
                {"w": ws, "n": tag}).scalar() or s.execute(text(
                    "SELECT id FROM tags WHERE workspace_id = :w AND lower(name) = lower(:n)"),
                    {"w": ws, "n": tag}).scalar()
        funnels = [(f.id, f.published_version_id) for f in s.scalars(
            select(Funnel).where(Funnel.workspace_id == ws, Funnel.published_version_id.is_not(None)))]
        if not funnels:
            for funnel_name, build in EXAMPLES.values():
                definition = build()
                funnel = Funnel(workspace_id=ws, name=funnel_name, draft=definition, is_active=False)
                s.add(funnel)
                s.flush()
                version = FunnelVersion(funnel_id=funnel.id, version=1, definition=definition)
                s.add(version)
                s.flush()
                funnel.published_version_id = version.id
                funnels.append((funnel.id, version.id))
        definitions = {v: s.get(FunnelVersion, v).definition for _, v in funnels}
        admin = Actor(admin_id, ws, "admin", "Admin", "")
        return {"workspace": ws, "zone": workspace.timezone, "admin": admin,
                "agent": Actor(agents[0], ws, "agent", "", "") if agents else admin,
                "supervisor": supervisor, "instances": instances, "agents": agents, "team_of": team_of,
                "teams": list(teams.values()), "funnels": funnels, "definitions": definitions,
                "tags": [tag_ids[tag] for tag in TAGS], "qualified": tag_ids[QUALIFIED]}


def _people(count: int, fake: Faker, rng: random.Random) -> Iterator[dict[str, Any]]:
    first = [fake.first_name() for _ in range(min(count, 3000) or 1)]
    last = [fake.last_name() for _ in range(min(count, 3000) or 1)]
    cities = [fake.city() for _ in range(200)]
    companies = [fake.company() for _ in range(500)]
    for n in range(count):
        person = f"{rng.choice(first)} {rng.choice(last)}"
        given = person.split()[0]
        custom = {"cidade": rng.choice(cities), "idade": rng.randint(18, 80), "plano": rng.choice(PLANS),
                  "nascimento": f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
                  "cliente": rng.random() < 0.3, "origem": rng.choice(SOURCES)}
        yield {"phone": f"55{rng.choice([11, 11, 11, 21, 31, 41, 51, 61, 71, 81])}9{rng.randrange(10**8):08d}",
               "name": person if rng.random() < 0.8 else None, "push_name": given,
               "email": f"{given.lower()}.{n}@exemplo.com.br" if rng.random() < 0.5 else None, "custom": custom,
               "company": rng.choice(companies) if rng.random() < 0.3 else None}


def _arrival(rng: random.Random, end: datetime, days: int, zone: ZoneInfo) -> datetime:
    """When a contact first writes: a day of the period (weekends quieter), an hour by ``HOURS``."""
    while True:
        day = (end - timedelta(days=rng.random() * days)).astimezone(zone).date()
        if day.weekday() < 5 or rng.random() < 0.45:
            break
    hour = rng.choices(range(24), HOURS)[0]
    local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=zone)
    return min(local.astimezone(UTC), end - timedelta(minutes=1))


def _business(moment: datetime, zone: ZoneInfo, rng: random.Random) -> datetime:
    """A person's reply: at ``moment`` if it falls in 08:00-19:00 on a weekday, else soon after the next opening."""
    local = moment.astimezone(zone)
    if local.weekday() < 5 and 8 <= local.hour < 19:
        return moment
    day = local.date() if local.hour < 8 else local.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    opening = datetime(day.year, day.month, day.day, 8, tzinfo=zone) + timedelta(minutes=rng.randint(5, 90))
    return opening.astimezone(UTC)


def _lognormal(rng: random.Random, median_s: float, spread: float = 1.0) -> timedelta:
    return timedelta(seconds=median_s * math.exp(rng.gauss(0, spread)))


# -- one conversation ---------------------------------------------------------------------------------------------

def _conversation(rows: _Rows, ids: dict[str, int], setup: dict[str, Any], rng: random.Random, contact_id: int,
                  instance_id: int, created: datetime, end: datetime, zone: ZoneInfo,
                  per_conversation: float | None) -> None:
    """Simulate one conversation's history, append its rows."""
    ws = setup["workspace"]
    conv_id = ids["conversations"]
    ids["conversations"] += 1
    conv = {"id": conv_id, "workspace_id": ws, "instance_id": instance_id, "contact_id": contact_id,
            "created_at": created, "agent_id": None, "team_id": None, "assigned_at": None, "first_reply_at": None,
            "closed_at": None, "status": "open", "last": created, "last_in": created}
    rows.conversations.append(conv)
    start = len(rows.messages)

    def message(at: datetime, direction: str, user: int | None = None, funnel: int | None = None) -> None:
        if at > end:
            return
        rows.messages.append((ws, instance_id, conv_id, direction, user, funnel, at))
        conv["last"] = max(conv["last"], at)
        if direction == "in":
            conv["last_in"] = max(conv["last_in"], at)
        elif user and conv["first_reply_at"] is None:
            conv["first_reply_at"] = at

    def event(at: datetime, kind: str, actor: int | None, **data: Any) -> None:
        if at <= end:
            rows.events.append((ws, actor, kind, conv_id, json.dumps(data), at))

    def assign(at: datetime, agent: int | None, team: int | None, actor: int | None, funnel: bool = False) -> None:
        event(at, "assigned", actor, agent_id=agent, team_id=team, **({"source": "funnel"} if funnel else {}))
        if at <= end:
            conv["agent_id"] = agent or conv["agent_id"]
            conv["team_id"] = team or conv["team_id"]
            conv["assigned_at"] = at if agent else conv["assigned_at"]

    message(created, "in")
    moment = created
    handed = False
    if setup["funnels"] and rng.random() < 0.52:
        moment, handed = _run(rows, ids, setup, rng, conv, contact_id, created, end, message, event, assign)
    if not handed and rng.random() < 0.75:
        moment = moment + _lognormal(rng, 600)
        agent = rng.choice(setup["agents"]) if setup["agents"] else None
        assign(moment, agent, setup["team_of"].get(agent), setup["supervisor"])
    episodes = 1 + (rng.random() < 0.15) + (rng.random() < 0.05)
    for episode in range(episodes):
        if episode:
            moment = moment + timedelta(days=rng.uniform(1, 20))
            if moment > end:
                break
            message(moment, "in")  # the contact writes again: reopened
            conv["status"], conv["closed_at"] = "open", None
        agent = conv["agent_id"] or (rng.choice(setup["agents"]) if setup["agents"] else None)
        if agent is None:
            break
        if rng.random() < 0.1 and len(setup["agents"]) > 1:  # reassigned before anyone answered
            moment = moment + _lognormal(rng, 900)
            agent = rng.choice([a for a in setup["agents"] if a != agent])
            assign(moment, agent, setup["team_of"].get(agent), setup["supervisor"])
        if rng.random() < 0.08:
            break  # nobody answered (yet)
        moment = _business(moment + _lognormal(rng, 20 * 60, 1.1), zone, rng)
        message(moment, "out", agent)
        exchanges = rng.randint(1, 4) if per_conversation is None else 0
        for _ in range(exchanges):
            moment = moment + _lognormal(rng, 300)
            message(moment, "in")
            moment = moment + _lognormal(rng, 240)
            message(moment, "out", agent)
        if rng.random() < 0.8:
            moment = moment + _lognormal(rng, 2 * 3600, 1.2)
            event(moment, "status_closed", agent)
            if moment <= end:
                conv["status"], conv["closed_at"] = "closed", moment
        else:
            conv["status"] = rng.choice(["open", "pending"])
            break
    if per_conversation is not None:
        # pad to the requested message count with the contact talking to the bot in the first minutes (before
        # any close, so episodes and response times stay those simulated above)
        target = int(per_conversation) + (rng.random() < per_conversation % 1)
        moment = created
        while len(rows.messages) - start < target:
            moment = moment + timedelta(seconds=rng.randint(1, 30))
            message(min(moment, end - timedelta(seconds=1)), rng.choice(["in", "out"]))


def _run(rows: _Rows, ids: dict[str, int], setup: dict[str, Any], rng: random.Random, conv: dict, contact_id: int,
         started: datetime, end: datetime, message, event, assign) -> tuple[datetime, bool]:
    """Walk one published funnel for the conversation; returns (when it stopped, whether it handed over)."""
    funnel_id, version_id = rng.choice(setup["funnels"])
    definition = setup["definitions"][version_id]
    types = {n["id"]: n.get("type") for n in definition.get("nodes", [])}
    edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge in definition.get("edges", []):
        edges[edge["source"]].append((str(edge.get("label") or "next"), edge["target"]))
    node = next((n for n, kind in types.items() if kind == "trigger"), None)
    run = {"id": ids["funnel_runs"], "funnel_id": funnel_id, "version_id": version_id, "conversation_id": conv["id"],
           "contact_id": contact_id, "started_at": started, "events": [], "status": "completed", "node": None}
    ids["funnel_runs"] += 1
    rows.runs.append(run)
    moment, handed = started, False
    for _ in range(40):
        if node is None:
            break
        kind = types.get(node, "send_message")
        run["node"] = node
        moment = moment + timedelta(seconds=rng.uniform(0.2, 3))
        if kind == "send_message" and rng.random() < 0.015:
            run["events"].append((node, kind, "error", moment))
            run["status"] = "failed"
            break
        if kind in WAITING_TYPES:
            if kind == "send_choices":
                message(moment, "out", None, funnel_id)
            run["events"].append((node, kind, "waiting", moment))
            if rng.random() < 0.2:  # the contact stops answering here
                recent = end - moment < timedelta(days=2)
                run["status"] = "waiting" if recent or rng.random() < 0.4 else "stopped"
                break
            moment = moment + _lognormal(rng, 90, 1.3)
            message(moment, "in")
            labels = [label for label, _ in edges[node]]
            weights = [8 if label == "next" else 1 if label == "timeout" else 3 for label in labels]
            label = rng.choices(labels, weights)[0] if labels else None
        else:
            run["events"].append((node, kind, "ok", moment))
            if kind == "send_message":
                message(moment, "out", None, funnel_id)
            if kind == "route":
                agent = rng.choice(setup["agents"]) if setup["agents"] and rng.random() < 0.5 else None
                team = setup["team_of"].get(agent) or rng.choice(setup["teams"])
                assign(moment, agent, team, None, funnel=True)
                event(moment, "bot_paused", None, reason="route", source="funnel")
                handed = True
            label = "next" if any(lbl == "next" for lbl, _ in edges[node]) else (
                edges[node][0][0] if edges[node] else None)
        node = next((target for lbl, target in edges[node] if lbl == label), None) if label else None
        if moment > end:
            run["status"] = "waiting"
            break
    run["events"] = [e for e in run["events"] if e[3] <= end]
    if run["status"] == "completed":
        run["ended_at"] = moment
        if rng.random() < 0.55:
            rows.tags.append((contact_id, setup["qualified"], min(moment + timedelta(seconds=5), end)))
    elif run["status"] in ("failed", "stopped"):
        run["ended_at"] = min(moment + timedelta(hours=rng.uniform(1, 24)), end)
    return moment, handed


# -- writing ------------------------------------------------------------------------------------------------------

def _copy(conn: Any, table: str, columns: tuple[str, ...], rows: Iterator[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _write(conn: Any, rows: _Rows, setup: dict[str, Any]) -> None:
    """COPY everything in dependency order (ids of contacts, conversations and runs were reserved)."""
    ws = setup["workspace"]
    _copy(conn, "contacts", ("id", "workspace_id", "instance_id", "phone", "name", "push_name", "email", "company",
                             "custom_data", "created_at", "updated_at"), iter(rows.contacts))
    seen_tags = set()
    _copy(conn, "contact_tags", ("contact_id", "tag_id", "created_at"),
          (row for row in rows.tags if (row[0], row[1]) not in seen_tags and not seen_tags.add((row[0], row[1]))))
    _copy(conn, "conversations", ("id", "workspace_id", "instance_id", "contact_id", "status", "agent_id", "team_id",
                                  "assigned_at", "first_reply_at", "last_message_at", "last_inbound_at",
                                  "created_at", "closed_at"),
          ((c["id"], ws, c["instance_id"], c["contact_id"], c["status"], c["agent_id"], c["team_id"],
            c["assigned_at"], c["first_reply_at"], c["last"], c["last_in"], c["created_at"], c["closed_at"])
           for c in rows.conversations))
    _copy(conn, "funnel_runs", ("id", "workspace_id", "funnel_id", "version_id", "conversation_id", "contact_id",
                                "status", "current_node", "started_at", "updated_at", "ended_at"),
          ((r["id"], ws, r["funnel_id"], r["version_id"], r["conversation_id"], r["contact_id"], r["status"],
            r["node"], r["started_at"], r.get("ended_at") or r["started_at"], r.get("ended_at"))
           for r in rows.runs))
    _copy(conn, "funnel_events", ("workspace_id", "run_id", "funnel_id", "version_id", "node_id", "node_type",
                                  "status", "created_at"),
          ((ws, r["id"], r["funnel_id"], r["version_id"], node, kind, status, at)
           for r in rows.runs for node, kind, status, at in r["events"]))
    rows.messages.sort(key=lambda m: m[6])  # ids in time order, as live traffic would give them
    _copy(conn, "messages", ("workspace_id", "instance_id", "conversation_id", "direction", "type", "status",
                             "sent_by_user_id", "sent_by_funnel_id", "created_at"),
          ((m[0], m[1], m[2], m[3], "text", "received" if m[3] == "in" else "read", m[4], m[5], m[6])
           for m in rows.messages))
    rows.events.sort(key=lambda e: e[5])
    _copy(conn, "activity_events", ("workspace_id", "actor_user_id", "kind", "subject_type", "subject_id", "data",
                                    "created_at"),
          ((e[0], e[1], e[2], "conversation", e[3], e[4], e[5]) for e in rows.events))
