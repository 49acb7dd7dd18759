"""JSON import and export of funnel definitions (the files the Funis page downloads and uploads)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from engine.core.definition.model import FunnelDefinition
from workbench.base.i18n import t

MAX_DEFINITION_BYTES = 2 * 1024 * 1024
"""Largest JSON accepted by ``import_json``."""


class DefinitionImportError(ValueError):
    """``import_json`` could not read the text; ``str(exc)`` is a pt-BR message for the user."""


def export_json(defn: FunnelDefinition | Mapping[str, Any]) -> str:
    """Serialize a definition as pretty, UTF-8 friendly JSON that ``import_json`` reads back."""
    if isinstance(defn, FunnelDefinition):
        payload = defn.model_dump(mode="json", exclude_none=True)
    else:
        payload = {"nodes": list(defn.get("nodes") or []), "edges": list(defn.get("edges") or [])}
    return json.dumps(payload, ensure_ascii=False, indent=2)


MAX_INT_DIGITS = 15
"""Longest integer accepted in an imported file: any id or setting fits, and the browser's canvas (JavaScript
numbers) keeps it exact."""


def _no_constants(name: str) -> Any:
    raise DefinitionImportError(t("definition.import.constant", name=name))


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:  # checked before int(): 5,000 digits would raise, and cost
        raise DefinitionImportError(t("definition.import.number", number=f"{text[:20]}…"))
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as infinity, which no database column holds
        raise DefinitionImportError(t("definition.import.number", number=text[:20]))
    return value


def import_json(text: str | bytes) -> dict[str, Any]:
    """Read an exported definition; raises ``DefinitionImportError`` (pt-BR message) when it cannot.

    Only the reading is checked here (size, JSON syntax, numbers a database can hold, the ``{nodes, edges}``
    shape); run ``validate_definition`` on the result before saving it.
    """
    # surrogatepass: a str holding a lone surrogate is measured here and cleaned where it is stored
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionImportError(t("definition.import.too_large", size_kb=size // 1024,
                                      max_kb=MAX_DEFINITION_BYTES // 1024))
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DefinitionImportError(t("definition.import.not_utf8")) from None
    if not text.strip():
        raise DefinitionImportError(t("definition.import.empty"))
    try:
        data = json.loads(text, parse_constant=_no_constants, parse_int=_bounded_int, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise DefinitionImportError(t("definition.import.syntax", line=exc.lineno, column=exc.colno,
                                      reason=exc.msg)) from None
    except RecursionError:
        raise DefinitionImportError(t("definition.import.too_deep")) from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise DefinitionImportError(t("definition.import.no_nodes"))
    edges = data.get("edges", [])
    if not isinstance(edges, list):
        raise DefinitionImportError(t("definition.import.edges"))
    return {**data, "edges": edges}
