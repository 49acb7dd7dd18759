"""Ready-made funnels (pt-BR), as canvas data: a welcome menu, the scheduling funnel from the spec, and the
qualification by an AI step with verified extraction.

They are functions returning fresh dicts so callers may edit what they get. Teams are named
(``team_name``) rather than numbered, because ids differ per workspace; the runtime resolves the name.
"""

from __future__ import annotations

from typing import Any

_COLUMN = 300
_ROW = 150


def _node(node_id: str, node_type: str, column: int, row: float, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": column * _COLUMN, "y": row * _ROW}, "data": data}


def _edge(source: str, target: str, label: str = "next") -> dict[str, Any]:
    return {"id": f"{source}-{label}-{target}", "source": source, "target": target, "label": label}


def welcome_funnel() -> dict[str, Any]:
    """First message -> welcome -> menu (1 Vendas / 2 Suporte) -> route to the chosen team."""
    nodes = [
        _node("inicio", "trigger", 0, 1, kind="first_message", priority=10),
        _node("boas_vindas", "send_message", 1, 1,
              text="Olá{% if contact.name %}, {{contact.name}}{% endif %}! 👋 Seja bem-vindo(a) à nossa "
                   "empresa."),
        _node("menu", "send_choices", 2, 1, prompt="Como podemos ajudar?", mode="numbered_text",
              options=[{"key": "vendas", "label": "Vendas"}, {"key": "suporte", "label": "Suporte"}],
              save_to="vars.assunto", max_retries=2, timeout_s=24 * 3600),
        _node("rota_vendas", "route", 3, 0, team_name="Vendas", pause_bot=True),
        _node("msg_vendas", "send_message", 4, 0,
              text="Perfeito! Um consultor de vendas vai falar com você em instantes."),
        _node("rota_suporte", "route", 3, 1, team_name="Suporte", pause_bot=True),
        _node("msg_suporte", "send_message", 4, 1,
              text="Certo! Nossa equipe de suporte já vai te atender. Se puder, descreva o problema."),
        _node("nao_entendi", "send_message", 3, 2,
              text="Não consegui entender sua escolha. Vou chamar alguém da equipe para te ajudar."),
        _node("rota_atendimento", "route", 4, 2, team_name="Suporte", pause_bot=True),
        _node("sem_resposta", "send_message", 3, 3,
              text="Quando quiser continuar, é só mandar uma mensagem por aqui. 😊", typing=False),
        _node("fim", "end", 5, 1),
    ]
    edges = [
        _edge("inicio", "boas_vindas"),
        _edge("boas_vindas", "menu"),
        _edge("menu", "rota_vendas", "vendas"),
        _edge("rota_vendas", "msg_vendas"),
        _edge("msg_vendas", "fim"),
        _edge("menu", "rota_suporte", "suporte"),
        _edge("rota_suporte", "msg_suporte"),
        _edge("msg_suporte", "fim"),
        _edge("menu", "nao_entendi", "no_match"),
        _edge("nao_entendi", "rota_atendimento"),
        _edge("menu", "sem_resposta", "timeout"),
    ]
    return {"nodes": nodes, "edges": edges}


def scheduling_funnel() -> dict[str, Any]:
    """Keyword "vendas" -> name -> e-mail (validated, retried) -> best time -> tag -> route to Vendas -> confirm."""
    nodes = [
        _node("inicio", "trigger", 0, 1, kind="keyword", mode="contains", words=["vendas"], priority=20),
        _node("pede_nome", "send_message", 1, 1,
              text="Olá! Sou o assistente virtual do time de vendas. Para começar, qual é o seu nome?"),
        _node("espera_nome", "wait_reply", 2, 1, save_to="contact.name", validation="any",
              timeout_s=24 * 3600),
        _node("pede_email", "send_message", 3, 1,
              text="Obrigado, {{contact.name}}! Qual é o seu melhor e-mail?"),
        _node("espera_email", "wait_reply", 4, 1, save_to="contact.custom_data.email", validation="email",
              retry_prompt="Hmm, esse e-mail não parece válido. Pode conferir e enviar de novo?", max_retries=2),
        _node("pede_horario", "send_message", 5, 1,
              text="Perfeito! Qual o melhor dia e horário para conversarmos?"),
        _node("espera_horario", "wait_reply", 6, 1, save_to="contact.custom_data.horario", validation="any"),
        _node("tag_agendamento", "add_tag", 7, 1, tag="agendamento"),
        _node("rota_vendas", "route", 8, 1, team_name="Vendas", pause_bot=True),
        _node("confirmacao", "send_message", 9, 1,
              text="Tudo certo! Um de nossos especialistas já vai te chamar para confirmar o agendamento."),
        _node("fim", "end", 10, 1),
        _node("sem_nome", "send_message", 3, 2,
              text="Sem problemas! Quando quiser falar com vendas, é só mandar \"vendas\".", typing=False),
        _node("email_invalido", "send_message", 5, 2,
              text="Tudo bem, seguimos sem o e-mail; o especialista confirma com você depois."),
    ]
    edges = [
        _edge("inicio", "pede_nome"),
        _edge("pede_nome", "espera_nome"),
        _edge("espera_nome", "pede_email"),
        _edge("espera_nome", "sem_nome", "timeout"),
        _edge("pede_email", "espera_email"),
        _edge("espera_email", "pede_horario"),
        _edge("espera_email", "email_invalido", "invalid"),
        _edge("email_invalido", "pede_horario"),
        _edge("pede_horario", "espera_horario"),
        _edge("espera_horario", "tag_agendamento"),
        _edge("tag_agendamento", "rota_vendas"),
        _edge("rota_vendas", "confirmacao"),
        _edge("confirmacao", "fim"),
    ]
    return {"nodes": nodes, "edges": edges}


def ai_qualification_funnel() -> dict[str, Any]:
    """Keyword "orçamento" -> greeting -> AI step collecting nome, e-mail, empresa and melhor horário (verified) ->
    tag ``ia_qualificado``, note to Vendas, route to Vendas; *humano* routes at once; *incompleto* leaves the door
    open; *erro* (no provider, provider down, budget spent) falls back to a plain menu."""
    nodes = [
        _node("inicio", "trigger", 0, 1, kind="keyword", mode="contains", words=["orçamento", "orcamento"],
              priority=15),
        _node("saudacao", "send_message", 1, 1,
              text="Olá{% if contact.name %}, {{contact.name}}{% endif %}! 👋 Sou a assistente virtual da equipe "
                   "de vendas. Vou fazer umas perguntas rápidas para preparar o seu atendimento."),
        _node("ia", "ai_reply", 2, 1,
              prompt="Você é a assistente de vendas da empresa. Converse de forma simpática e objetiva para "
                     "conhecer o contato e marcar uma conversa com um especialista. Pergunte um dado por vez, "
                     "na ordem: nome, e-mail, empresa e o melhor dia e horário para a conversa. Não fale de "
                     "preços nem prometa nada; se o contato insistir em algo que você não sabe, ofereça passar "
                     "para uma pessoa. {{history}}",
              fields=[
                  {"key": "nome", "type": "text", "description": "o nome do contato", "required": True,
                   "save_to": "contact.name"},
                  {"key": "email", "type": "email", "description": "o e-mail do contato", "required": True,
                   "save_to": "contact.custom_data.email"},
                  {"key": "empresa", "type": "text", "description": "a empresa onde o contato trabalha",
                   "required": True, "save_to": "contact.custom_data.empresa"},
                  {"key": "melhor_horario", "type": "datetime",
                   "description": "o melhor dia e horário para a conversa com o especialista", "required": True,
                   "save_to": "contact.custom_data.melhor_horario"},
              ], max_turns=10, reply_timeout_s=24 * 3600),
        _node("tag_qualificado", "add_tag", 3, 0, tag="ia_qualificado"),
        _node("nota_vendas", "notify_human", 4, 0, team_name="Vendas",
              message="Lead qualificado pela IA: {{contact.name}} ({{contact.custom_data.empresa}}), "
                      "{{contact.custom_data.email}}; prefere conversar em {{contact.custom_data.melhor_horario}}."),
        _node("rota_vendas", "route", 5, 0, team_name="Vendas", pause_bot=True),
        _node("confirmacao", "send_message", 6, 0,
              text="Perfeito! Um especialista vai te chamar no horário combinado. Até logo! 😊"),
        _node("rota_humano", "route", 3, 1, team_name="Vendas", pause_bot=True),
        _node("msg_humano", "send_message", 4, 1, text="Claro! Já chamei alguém da equipe para falar com você."),
        _node("incompleto", "send_message", 3, 2,
              text="Sem problemas! Quando quiser continuar, é só mandar \"orçamento\".", typing=False),
        _node("menu", "send_choices", 3, 3, prompt="Como podemos ajudar?", mode="numbered_text",
              options=[{"key": "vendas", "label": "Vendas"}, {"key": "suporte", "label": "Suporte"}],
              save_to="vars.assunto", max_retries=2),
        _node("menu_vendas", "route", 4, 3, team_name="Vendas", pause_bot=True),
        _node("menu_suporte", "route", 4, 4, team_name="Suporte", pause_bot=True),
        _node("fim", "end", 7, 1),
    ]
    edges = [
        _edge("inicio", "saudacao"),
        _edge("saudacao", "ia"),
        _edge("ia", "tag_qualificado", "qualificado"),
        _edge("tag_qualificado", "nota_vendas"),
        _edge("nota_vendas", "rota_vendas"),
        _edge("rota_vendas", "confirmacao"),
        _edge("confirmacao", "fim"),
        _edge("ia", "rota_humano", "humano"),
        _edge("rota_humano", "msg_humano"),
        _edge("msg_humano", "fim"),
        _edge("ia", "incompleto", "incompleto"),
        _edge("ia", "menu", "erro"),
        _edge("menu", "menu_vendas", "vendas"),
        _edge("menu", "menu_suporte", "suporte"),
    ]
    return {"nodes": nodes, "edges": edges}


def odoo_step(column: int, row: float) -> dict[str, Any]:
    """The optional "Enviar para Odoo" step of the sales examples: the lead with the conversation as description."""
    return _node("enviar_odoo", "odoo", column, row, title="{{contact.name}} — WhatsApp",
                 description="{{history}}", tags=["whatsapp"])


ODOO_SPLICES = {"agendamento": ("tag_agendamento", "rota_vendas"), "qualificacao_ia": ("nota_vendas", "rota_vendas")}
"""Examples that can take the optional Odoo step: key -> (the node it follows, the node it leads to)."""


def with_odoo_step(definition: dict[str, Any], after: str, before: str) -> dict[str, Any]:
    """``definition`` with the "Enviar para Odoo" step between ``after`` and ``before``.

    Both of its outputs go on to ``before``: a workspace whose Odoo is down (or not configured yet) still routes
    the lead, and the failure is in the contact's activity and the funnel's events.
    """
    anchor = next(n for n in definition["nodes"] if n["id"] == after)
    step = odoo_step(0, 0)
    step["position"] = {"x": anchor["position"]["x"] + _COLUMN / 2, "y": anchor["position"]["y"] + _ROW}
    nodes = [*definition["nodes"], step]
    edges = [e for e in definition["edges"] if not (e["source"] == after and e["target"] == before)]
    edges += [_edge(after, "enviar_odoo"), _edge("enviar_odoo", before, "sucesso"),
              _edge("enviar_odoo", before, "falha")]
    return {**definition, "nodes": nodes, "edges": edges}


def example_definition(key: str, *, odoo: bool = False) -> dict[str, Any]:
    """A fresh copy of the example ``key``; ``odoo`` adds the optional "Enviar para Odoo" step where it fits."""
    definition = EXAMPLES[key][1]()
    if odoo and key in ODOO_SPLICES:
        definition = with_odoo_step(definition, *ODOO_SPLICES[key])
    return definition


EXAMPLES = {
    "boas_vindas": ("Funil de Boas-Vindas", welcome_funnel),
    "agendamento": ("Funil de Agendamento", scheduling_funnel),
    "qualificacao_ia": ("Funil de Qualificação com IA", ai_qualification_funnel),
}
"""key -> (pt-BR funnel name, builder)."""
