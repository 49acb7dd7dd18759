"""Funnels running for real: inbound path -> drain -> runtime -> outbox, on PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta

from rq.job import Job
from sqlalchemy import func, select, update

from engine.core.examples import scheduling_funnel, welcome_funnel
from engine.worker import jobs
from engine.worker.inbound import apply_events
from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.sql_count import statements_run
from workbench.base.clock import now
from workbench.services import conversations, funnels, runs, workspace_settings
from workbench.store import live
from workbench.store.db import session_scope
from workbench.store.models import Contact, ContactTag, Conversation, FunnelEvent, FunnelRun, Message, Tag
from workbench.store.text import MAX_CONTACT_FIELD_CHARS, MAX_CONTACT_FIELDS, MAX_CONTACT_NAME_CHARS, preview

LEAD = "5521977776666"


def setup_workspace(*builders, active=True):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    make_team(ws, "Vendas")
    make_team(ws, "Suporte")
    ids = []
    for name, build in builders:
        fid = funnels.create_funnel(admin, name, build())
        funnels.publish(admin, fid)
        if active:
            funnels.set_active(admin, fid, True)
        ids.append(fid)
    runs.clear_cache()
    return ws, inst, admin, ids


def say(inst: int, *texts: str, phone: str = LEAD) -> None:
    publish(*[inbound(inst, phone=phone, text=t) for t in texts])
    run_jobs()


def bot_texts(phone: str = LEAD) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Message.text).join(Conversation, Conversation.id == Message.conversation_id)
                              .join(Contact, Contact.id == Conversation.contact_id)
                              .where(Contact.phone == phone, Message.direction == "out").order_by(Message.id)))


def the_run() -> FunnelRun:
    with session_scope() as s:
        return s.scalars(select(FunnelRun).order_by(FunnelRun.id.desc())).first()


def test_scheduling_funnel_end_to_end(engine, r):
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel), ("Agendamento", scheduling_funnel))
    say(inst, "Oi, quero falar com VENDAS")  # new contact: both triggers match, the keyword's priority wins
    assert bot_texts() == ["Olá! Sou o assistente virtual do time de vendas. Para começar, qual é o seu nome?"]
    say(inst, "Carla")
    assert bot_texts()[-1] == "Obrigado, Carla! Qual é o seu melhor e-mail?"
    say(inst, "carla arroba exemplo")
    assert bot_texts()[-1] == "Hmm, esse e-mail não parece válido. Pode conferir e enviar de novo?"
    say(inst, "carla@exemplo.com.br")
    assert bot_texts()[-1] == "Perfeito! Qual o melhor dia e horário para conversarmos?"
    say(inst, "Amanhã às 10h")
    assert bot_texts()[-1] == "Tudo certo! Um de nossos especialistas já vai te chamar para confirmar o agendamento."
    run = the_run()
    assert run.status == "completed"
    with session_scope() as s:
        contact = s.scalars(select(Contact).where(Contact.phone == LEAD)).one()
        assert contact.name == "Carla"
        assert contact.custom_data == {"email": "carla@exemplo.com.br", "horario": "Amanhã às 10h"}
        assert s.scalar(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)) == "agendamento"
        conv = s.scalars(select(Conversation)).one()
        assert conv.bot_paused and conv.bot_paused_reason == "route" and conv.team_id is not None
        events = s.scalars(select(FunnelEvent.node_id).where(FunnelEvent.run_id == run.id)
                           .order_by(FunnelEvent.id)).all()
        assert events[0] == "inicio" and events[-1] == "fim" and "tag_agendamento" in events
    say(inst, "obrigada!")  # the bot is paused after the route: nothing more is sent
    assert bot_texts()[-1].startswith("Tudo certo!")


def test_welcome_funnel_menu_by_number_and_by_text(engine, r):
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel))
    say(inst, "oi", phone="551101")
    assert bot_texts("551101")[-1].startswith("Como podemos ajudar?") and "1. Vendas" in bot_texts("551101")[-1]
    say(inst, "2", phone="551101")
    assert bot_texts("551101")[-1].startswith("Certo! Nossa equipe de suporte")
    say(inst, "olá", phone="551102")
    say(inst, "vendas", phone="551102")
    assert bot_texts("551102")[-1] == "Perfeito! Um consultor de vendas vai falar com você em instantes."


def test_first_message_counts_for_a_contact_we_wrote_to_first_from_the_phone(engine, r):
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel))
    publish(inbound(inst, phone="551103", text="Oi, aqui é a Ana da loja", from_me=True))  # sent from the phone
    run_jobs()
    assert bot_texts("551103") == ["Oi, aqui é a Ana da loja"], "our own message starts nothing"
    say(inst, "oi Ana", phone="551103")
    assert bot_texts("551103")[1].startswith("Olá, Maria! 👋"), "the contact's first message ever"
    say(inst, "2", phone="551103")
    say(inst, "outra coisa", phone="551103")
    assert sum(text.startswith("Olá") for text in bot_texts("551103")) == 1, "and only the first"


def test_reply_while_paused_waits_and_resume_continues(engine, r):
    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas")
    conv_id = conversations.list_conversations(admin)[0]["id"]
    conversations.pause_bot(admin, conv_id)
    say(inst, "Carla")
    assert len(bot_texts()) == 1 and the_run().current_node == "espera_nome"
    conversations.resume_bot(admin, conv_id)
    say(inst, "Carla")
    assert bot_texts()[-1] == "Obrigado, Carla! Qual é o seu melhor e-mail?"


def test_timeout_branch_fires_and_stale_tokens_do_nothing(engine, r):
    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas")
    run = the_run()
    assert run.status == "waiting" and run.wait_deadline is not None
    assert r.zcard("rq:scheduled:default") == 1  # the timeout is an RQ scheduled job
    jobs.funnel_timer(run.id, "not-the-token")
    assert len(bot_texts()) == 1  # a stale timer does nothing
    jobs.funnel_timer(run.id, run.wait_token)
    assert bot_texts()[-1].startswith("Sem problemas!")
    assert the_run().status == "completed"


def test_the_timer_of_a_new_runs_first_wait_names_that_run(engine, r):
    """A run that waits at its first stop (welcome, then the menu) is a new row: its timer job must carry the id
    the row got, or the timeout would only fire when the sweep finds it overdue."""
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel))
    say(inst, "oi", phone="5521955554444")  # warms the worker's caches: no query flushes the new run by chance
    r.delete("rq:scheduled:default")
    say(inst, "oi")
    run = the_run()
    [job_id] = r.zrange("rq:scheduled:default", 0, -1)
    job = Job.fetch(job_id.decode(), connection=r)
    assert list(job.args) == [run.id, run.wait_token]
    jobs.funnel_timer(*job.args)
    assert bot_texts()[-1].startswith("Quando quiser continuar")
    assert the_run().status == "completed"


def _overdue(run_id: int, minutes: int) -> None:
    """The run's deadline passed ``minutes`` ago (its timer job came due, or was lost with Redis)."""
    with session_scope() as s:
        s.execute(update(FunnelRun).where(FunnelRun.id == run_id).values(
            wait_deadline=now() - timedelta(minutes=minutes)))


def test_timers_of_a_paused_conversation_wait_and_fire_once_the_bot_resumes(engine, r):
    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas")
    conv_id = conversations.list_conversations(admin)[0]["id"]
    conversations.pause_bot(admin, conv_id)
    run = the_run()
    _overdue(run.id, 5)
    jobs.funnel_timer(run.id, run.wait_token)  # came due while a human has the conversation: it waits
    assert len(bot_texts()) == 1 and the_run().status == "waiting"
    revision = live.revision(r, ws)
    assert jobs.sweep()["timers_rescheduled"] == 0, "a paused run's timer is not re-queued on every sweep"
    assert live.revision(r, ws) == revision, "so open inboxes are not made to re-read"

    conversations.resume_bot(admin, conv_id)
    with session_scope() as s:
        assert runs.due_timers(s) == [(run.id, run.wait_token, the_run().wait_deadline)]
    assert jobs.sweep()["timers_rescheduled"] == 1
    jobs.funnel_timer(run.id, run.wait_token)  # the re-scheduled job
    assert bot_texts()[-1].startswith("Sem problemas!")
    assert the_run().status == "completed"


def test_overdue_timers_are_rescheduled_longest_overdue_first(engine, r):
    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas", phone="551101")
    say(inst, "vendas", phone="551102")
    with session_scope() as s:
        first, second = s.scalars(select(FunnelRun.id).order_by(FunnelRun.id)).all()
    _overdue(first, 1)
    _overdue(second, 10)
    with session_scope() as s:
        assert [run_id for run_id, _, _ in runs.due_timers(s)] == [second, first]


def test_timeout_does_not_fire_after_the_reply(engine, r):
    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas")
    old = the_run()
    say(inst, "Carla")
    jobs.funnel_timer(old.id, old.wait_token)  # the job scheduled for the first wait comes due later
    assert bot_texts()[-1] == "Obrigado, Carla! Qual é o seu melhor e-mail?"
    assert the_run().current_node == "espera_email"


def test_a_run_keeps_the_version_it_started_with(engine, r):
    ws, inst, admin, (fid,) = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas")
    changed = scheduling_funnel()
    next(n for n in changed["nodes"] if n["id"] == "pede_email")["data"]["text"] = "Versão 2: e-mail?"
    funnels.save_draft(admin, fid, changed)
    assert funnels.publish(admin, fid) == 2
    say(inst, "Carla")
    assert bot_texts()[-1] == "Obrigado, Carla! Qual é o seu melhor e-mail?"  # still version 1
    say(inst, "vendas", phone="551199")
    say(inst, "Ana", phone="551199")
    assert bot_texts("551199")[-1] == "Versão 2: e-mail?"


def test_two_quick_messages_are_handled_in_order(engine, r):
    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel))
    say(inst, "vendas")
    say(inst, "Carla", "carla@exemplo.com")  # one batch: the name first, then the e-mail
    assert bot_texts()[-2:] == ["Obrigado, Carla! Qual é o seu melhor e-mail?",
                                "Perfeito! Qual o melhor dia e horário para conversarmos?"]


def test_inactive_funnel_does_not_start_and_default_reply_answers(engine, r):
    from workbench.services.workspace_settings import save_setting

    ws, inst, admin, _ = setup_workspace(("Agendamento", scheduling_funnel), active=False)
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Já respondemos!"})
    say(inst, "vendas")
    assert bot_texts() == ["Já respondemos!"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(FunnelRun)) == 0


def test_a_200_node_funnel_runs(engine, r):
    nodes = [{"id": "t", "type": "trigger", "position": {"x": 0, "y": 0},
              "data": {"kind": "keyword", "mode": "exact", "words": ["longo"]}}]
    edges = []
    previous = "t"
    for k in range(198):
        node_id = f"n{k}"
        if k == 99:
            nodes.append({"id": node_id, "type": "wait_reply", "position": {"x": k, "y": 0},
                          "data": {"save_to": "vars.meio", "validation": "any"}})
        else:
            nodes.append({"id": node_id, "type": "send_message", "position": {"x": k, "y": 0},
                          "data": {"text": f"passo {k} {{{{vars.meio}}}}", "typing": False}})
        edges.append({"id": f"e{k}", "source": previous, "target": node_id, "label": "next"})
        previous = node_id
    nodes.append({"id": "fim", "type": "end", "position": {"x": 999, "y": 0}, "data": {}})
    edges.append({"id": "efim", "source": previous, "target": "fim", "label": "next"})
    assert len(nodes) == 200
    ws, inst, admin, _ = setup_workspace(("Longo", lambda: {"nodes": nodes, "edges": edges}))
    say(inst, "longo")
    assert len(bot_texts()) == 99
    say(inst, "X")
    assert len(bot_texts()) == 197 and bot_texts()[-1] == "passo 197 X"
    assert the_run().status == "completed"


def statements_for(message) -> int:
    """How many SQL statements the inbound path runs to store and answer one message (caches warm)."""
    with statements_run() as executed, session_scope() as s:
        apply_events(s, message.instance_id, [message])
    return len(executed)


def test_the_welcome_funnel_costs_the_same_statements_per_message(engine, monkeypatch):
    """The hot path's budget: a change that adds a statement per message fails here (update the numbers only
    for a reason worth the cost)."""
    for module in (runs, workspace_settings):
        monkeypatch.setattr(module, "_CACHE_TTL_S", 3600.0)  # warm caches stay warm however slow the machine is
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel))
    statements_for(inbound(inst, phone="551190", text="oi"))  # published versions, time zone and settings cached
    first = statements_for(inbound(inst, phone=LEAD, text="oi"))  # a new contact: the funnel starts
    reply = statements_for(inbound(inst, phone=LEAD, text="2"))  # the waiting run takes the reply
    quiet = statements_for(inbound(inst, phone=LEAD, text="obrigado"))  # the run ended: nothing answers
    assert len(bot_texts()) == 3, "the greeting and the menu, then the support answer"
    # the reply's route step records its assignment and pause for the contact's activity feed (one insert), and
    # reads (and locks) its team for the team's automatic distribution (one select: workbench/services/routing.py).
    # Storing the message is one statement, which also tells whether a run is live (engine/worker/inbound.py); a
    # walk's messages are one statement (the greeting and the menu: workbench/services/outbox.py), and its funnel
    # events one multi-row insert (workbench/services/runs.py).
    assert (first, reply, quiet) == (5, 15, 3)


def test_a_batch_of_new_leads_costs_a_few_statements_for_the_whole_batch(engine, monkeypatch):
    """Under a burst a drain stores many new leads per transaction: their messages are one statement (a run of
    distinct contacts); the first walk inserts its run, the others take ids reserved in doubling blocks and their
    runs, like the walks' messages and funnel steps of the whole batch, are one statement each (``db.hold_rows``)."""
    for module in (runs, workspace_settings):
        monkeypatch.setattr(module, "_CACHE_TTL_S", 3600.0)
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel))
    statements_for(inbound(inst, phone="551190", text="oi"))  # caches warm
    leads = [f"55219{k:08d}" for k in range(20)]
    with statements_run() as executed, session_scope() as s:
        applied = apply_events(s, inst, [inbound(inst, phone=lead, text="oi") for lead in leads])
    reservations = [sql for sql in executed if "nextval(pg_get_serial_sequence('funnel_runs'" in sql]
    assert len(reservations) == 4, "ids for 19 runs in blocks of 2, 4, 8 and 16"
    assert len(executed) == 1 + 1 + 1 + 4 + 3  # the number, the messages, the first run, the ids, the held writes
    assert sorted(c.to_phone for c in applied.effects.commands) == sorted(leads * 2)
    with session_scope() as s:
        for lead in leads:
            conversation = s.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                                        .where(Contact.phone == lead)).one()
            texts = s.scalars(select(Message.text).where(Message.conversation_id == conversation.id,
                                                         Message.direction == "out").order_by(Message.id)).all()
            assert len(texts) == 2 and conversation.last_message_preview == preview(texts[-1])
            run = s.scalars(select(FunnelRun).where(FunnelRun.conversation_id == conversation.id)).one()
            assert s.scalar(select(func.count()).select_from(FunnelEvent).where(FunnelEvent.run_id == run.id)) > 0


def test_held_runs_are_written_before_their_steps_and_before_their_contact_writes_again(engine):
    """A batch where a waiting lead answers first (its steps held first), then new leads arrive, one of them
    answering the menu within the same batch: each new lead after the first has its run held (a reserved id), and
    it is written before the held funnel steps that refer to it and before the lead's next message is stored, so
    that message resumes the run rather than starting another."""
    ws, inst, admin, _ = setup_workspace(("Boas-vindas", welcome_funnel))
    waiting, first, second = "5521911110000", "5521922220000", "5521933330000"
    say(inst, "oi", phone=waiting)
    with session_scope() as s:
        apply_events(s, inst, [inbound(inst, phone=waiting, text="1"), inbound(inst, phone=first, text="oi"),
                               inbound(inst, phone=second, text="oi"), inbound(inst, phone=second, text="2")])
    assert bot_texts(second)[-1].startswith("Certo! Nossa equipe de suporte")
    assert bot_texts(waiting)[-1].startswith("Perfeito! Um consultor de vendas")
    with session_scope() as s:
        by_lead = {phone: s.execute(select(FunnelRun.status, func.count(FunnelEvent.id))
                                    .join(Contact, Contact.id == FunnelRun.contact_id)
                                    .join(FunnelEvent, FunnelEvent.run_id == FunnelRun.id)
                                    .where(Contact.phone == phone).group_by(FunnelRun.id)).all()
                   for phone in (waiting, first, second)}
    assert [len(runs_) for runs_ in by_lead.values()] == [1, 1, 1], "one run per lead"
    assert [runs_[0][0] for runs_ in by_lead.values()] == ["completed", "waiting", "completed"]


def test_a_funnel_started_by_go_to_reads_the_messages_the_first_one_sent(engine, r):
    """The bot's messages of a batch are held until the batch ends (``db.hold_rows``), but a funnel that a walk
    starts in the same conversation reads its history from the database: what the first walk sent is written
    before the second one starts."""
    def node(node_id: str, x: int, type_: str, **data) -> dict:
        return {"id": node_id, "type": type_, "position": {"x": x, "y": 0}, "data": data}

    def chain(*nodes: dict) -> dict:
        return {"nodes": list(nodes), "edges": [{"id": f"{a['id']}-{b['id']}", "source": a["id"], "target": b["id"],
                                                 "label": "next"} for a, b in zip(nodes, nodes[1:], strict=False)]}

    second = chain(node("t", 0, "trigger", kind="keyword", mode="exact", words=["nunca"]),
                   node("eco", 300, "send_message", text="{{history}}", typing=False), node("e", 600, "end"))
    ws, inst, admin, [second_id] = setup_workspace(("Depois", lambda: second))
    first = funnels.create_funnel(admin, "Primeiro", chain(
        node("t", 0, "trigger", kind="any_message"), node("oi", 300, "send_message", text="Olá!", typing=False),
        node("vai", 600, "go_to_funnel", funnel_id=second_id)))
    funnels.publish(admin, first)
    funnels.set_active(admin, first, True)
    runs.clear_cache()
    say(inst, "oi")
    greeting, history = bot_texts()
    assert greeting == "Olá!" and history.splitlines()[-1] == "Bot: Olá!"


def field_funnel() -> dict:
    """Any message -> store it in the contact's name and in the fields "nota" and "extra" -> end."""
    def node(node_id: str, x: int, target: str) -> dict:
        return {"id": node_id, "type": "set_field", "position": {"x": x, "y": 0},
                "data": {"target": target, "value": "{{trigger.message}}"}}

    nodes = [{"id": "t", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "any_message"}},
             node("nome", 300, "contact.name"), node("nota", 600, "contact.custom_data.nota"),
             node("extra", 900, "contact.custom_data.extra"),
             {"id": "e", "type": "end", "position": {"x": 1200, "y": 0}, "data": {}}]
    order = [n["id"] for n in nodes]
    return {"nodes": nodes, "edges": [{"id": f"{a}-{b}", "source": a, "target": b, "label": "next"}
                                      for a, b in zip(order, order[1:], strict=False)]}


def test_set_field_keeps_the_contact_forms_limits(engine, r, caplog):
    """A contact's long message stored by a funnel is cut to what the contact form accepts, and a funnel adds no
    field beyond the form's limit (it may still change an existing one); each is logged, without the text."""
    ws, inst, admin, _ = setup_workspace(("Campos", field_funnel))
    long_text = "palavra " * 1_000
    say(inst, long_text)
    with session_scope() as s:
        contact = s.scalars(select(Contact)).one()
        assert contact.name == long_text[:MAX_CONTACT_NAME_CHARS]
        assert contact.custom_data == {"nota": long_text[:MAX_CONTACT_FIELD_CHARS],
                                       "extra": long_text[:MAX_CONTACT_FIELD_CHARS]}
        contact.custom_data = {f"campo{i}": "x" for i in range(MAX_CONTACT_FIELDS - 1)} | {"nota": "antiga"}
    say(inst, "curta")
    with session_scope() as s:
        fields = s.scalars(select(Contact)).one().custom_data
    assert len(fields) == MAX_CONTACT_FIELDS and fields["nota"] == "curta" and "extra" not in fields
    logged = caplog.text
    assert "cut to 1000" in logged and "extra not stored" in logged and "palavra" not in logged
