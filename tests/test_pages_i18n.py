"""The one pt-BR catalog: every key the panel, the editor and the engine use exists, every error the services raise
has a message, every node type has its strings."""

from __future__ import annotations

import ast
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connector.contracts import MESSAGE_TYPES, STATES
from engine.core.definition import PROBLEM_CODES
from engine.core.nodes import PLANNED_TYPES, REGISTRY
from workbench.base import i18n
from workbench.base.errors import LoginThrottled, NotFound, WorkbenchError
from workbench.editor import node_forms
from workbench.store.models import ROLES

ROOT = Path(__file__).resolve().parent.parent
UI_FILES = [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]
CORE_FILES = [*sorted((ROOT / "engine").rglob("*.py")), *sorted((ROOT / "workbench" / "editor").glob("*.py"))]
# t("key") and t(f"prefix.{...}") calls; f-string prefixes are checked to have at least one key.
LITERAL_KEY = re.compile(r"""\bt\(\s*"([a-z_.]+)"\s*[,)]""")
PREFIX_KEY = re.compile(r"""\bt\(\s*f["']([a-z_.]+)\{""")
ERROR_KEY = re.compile(r"""key="(error\.[a-z_.]+)\"""")


@pytest.mark.parametrize("files", [UI_FILES, CORE_FILES], ids=["panel", "engine and editor"])
def test_every_key_used_exists(files):
    used = {key for path in files for key in LITERAL_KEY.findall(path.read_text())}
    assert len(used) > 40  # the regex still finds the calls
    assert sorted(k for k in used if not i18n.has_key(k)) == []
    prefixes = {p for path in files for p in PREFIX_KEY.findall(path.read_text())}
    catalog = i18n.CATALOG[i18n.DEFAULT_LOCALE]
    assert prefixes and all(any(k.startswith(p) for k in catalog) for p in prefixes)


def test_every_node_type_and_problem_has_its_strings():
    wanted = [f"node.{kind}.label" for kind in PLANNED_TYPES]
    wanted += [f"definition.problem.{code}" for code in PROBLEM_CODES]
    for kind, spec in REGISTRY.items():
        wanted += [f"node.{kind}.label", f"node.{kind}.description"]
        for field in node_forms.form_fields(spec, {}):
            wanted.append(f"node.{kind}.field.{field.name}")
            wanted += [f"node.{kind}.value.{field.name}.{choice}" for choice in field.choices]
    assert len(wanted) > 100
    assert [key for key in wanted if not i18n.has_key(key)] == []


def test_every_error_key_raised_has_a_message():
    sources = [*(ROOT / "workbench").rglob("*.py"), *(ROOT / "engine").rglob("*.py")]
    raised = {key for path in sources for key in ERROR_KEY.findall(path.read_text())}
    raised |= {cls.key for cls in [WorkbenchError, *_subclasses(WorkbenchError)]}
    assert "error.bad_credentials" in raised
    assert sorted(k for k in raised if not i18n.has_key(k)) == []


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_states_types_statuses_and_roles_have_labels():
    assert all(i18n.has_key(f"state.{s}") for s in STATES)
    assert all(i18n.has_key(f"msgtype.{m}") for m in MESSAGE_TYPES)
    assert all(i18n.has_key(f"role.{r}") for r in ROLES)
    assert i18n.state_label("connected") == "Conectado"
    assert i18n.state_label("awaiting_qr") == "Aguardando leitura do QR"
    assert i18n.state_label("disconnected") == "Desconectado"
    assert i18n.state_label("something-new") == "Estado desconhecido"
    assert i18n.type_placeholder("sticker") == "[Figurinha]"
    assert i18n.type_placeholder("revoke") == "[Mensagem apagada]"
    assert i18n.type_placeholder("hologram") == "[Tipo de mensagem não suportado]"
    assert i18n.status_label("delivered") == "✓✓ entregue"
    assert i18n.reason_label("exit:1") == "O conector encerrou (código 1) e será reiniciado"
    assert i18n.reason_label("logout") == "Desconectado pelo painel"
    assert i18n.reason_label("brand_new_code") is None


def test_error_text():
    assert i18n.error_text(LoginThrottled(125)) == "Muitas tentativas sem sucesso. Aguarde 2 min 5 s e tente de novo."
    assert i18n.error_text(NotFound("x", key="error.conversation_not_found")) == "Conversa não encontrada."
    # an unknown key falls back to the class's message, then to the generic one
    assert i18n.error_text(NotFound("x", key="error.brand_new")) == "Não encontrado."
    assert i18n.error_text(WorkbenchError("x", key="error.brand_new")) == i18n.t("error.generic")


def test_missing_key_and_placeholders_do_not_crash():
    assert i18n.t("no.such.key") == "no.such.key"
    assert i18n.t("inbox.unread") == "{n} não lidas"  # no values: the template as is
    assert i18n.t("inbox.unread", other=1) == " não lidas"


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (59, "59 s"), (60, "1 min"), (125, "2 min 5 s"), (3600, "1 h"), (3720, "1 h 2 min"),
    (86400 * 3, "3 d"),
])
def test_format_duration(seconds, text):
    assert i18n.format_duration(seconds) == text


def test_format_when():
    now = datetime(2026, 11, 25, 15, 0, tzinfo=i18n.DISPLAY_TZ)
    assert i18n.format_when(now - timedelta(hours=1), now) == "14:00"
    assert i18n.format_when(now - timedelta(days=1), now) == "ontem"
    assert i18n.format_when(now - timedelta(days=3), now) == "22/11"
    assert i18n.format_when(now - timedelta(days=400), now) == "21/10/2025"
    assert i18n.format_age(0.2) == "agora mesmo" and i18n.format_age(12) == "há 12 s"


# Portuguese text a module might keep for itself: accented letters or the words our messages start with.
PORTUGUESE = re.compile(r"[à-úÀ-Ú]|\b(não|nó|inválid[oa]|erro|deve)\b")
# Content rather than messages: the example funnels' texts are what the bot says in the demo.
# sample content in Portuguese, not UI text: example funnels, the catalog itself, the demo history's tags and names
CONTENT_FILES = {ROOT / "engine" / "core" / "examples.py", ROOT / "workbench" / "base" / "i18n.py",
                 ROOT / "workbench" / "analytics" / "demo.py"}


def _literals(path: Path) -> list[tuple[int, str]]:
    """String literals of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for statement, following in zip([None, *body], body, strict=False):
            documents = statement is None or isinstance(statement, ast.Assign | ast.AnnAssign)
            if documents and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docstrings.add(id(following.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_portuguese_text_lives_in_the_catalog():
    sources = [path for folder in ("engine", "workbench") for path in sorted((ROOT / folder).rglob("*.py"))
               if "migrations" not in path.parts and path not in CONTENT_FILES]
    # edge labels are identifiers stored in definitions (the AI step's "erro"), not messages
    from engine.core.nodes import REGISTRY

    labels = {label for spec in REGISTRY.values() for label in spec.outputs(spec.default_data())}
    found = [f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}" for path in sources
             for line, text in _literals(path) if PORTUGUESE.search(text) and text not in labels]
    assert found == []
