"""A funnel definition: the model (``model``), its validation (``checks``), JSON import/export (``io``) and a pure
walk over it (``walk``). Callers import from here.

Shape (what streamlit-flow keeps, configuration in ``data``, outputs on edge labels because the canvas has
one source handle per node)::

    {"nodes": [{"id": "n1", "type": "send_message", "position": {"x": 0, "y": 0}, "data": {"text": "Oi"}}],
     "edges": [{"id": "e1", "source": "n1", "target": "n2", "label": "next"}]}

streamlit-flow only knows the React Flow types ``default``/``input``/``output``; a canvas node of one of
those types carrying ``data.node_type`` is read as that funnel node type. An edge drawn without a label
from a node whose only output is ``next`` means ``next``.

``validate_definition`` reports every problem at once, each tied to a node or edge id with a machine code
and a pt-BR message, so the canvas can mark them all. ``FunnelDefinition`` itself only checks each node's
schema; publish only what ``validate_definition`` accepts (``ValidationReport.definition``).
"""

from __future__ import annotations

from engine.core.definition.checks import (
    MAX_EDGES,
    MAX_NODES,
    PROBLEM_CODES,
    Problem,
    ValidationReport,
    load_definition,
    validate_definition,
)
from engine.core.definition.io import MAX_DEFINITION_BYTES, DefinitionImportError, export_json, import_json
from engine.core.definition.model import CANVAS_TYPES, Edge, FunnelDefinition, canvas_node
from engine.core.definition.walk import MAX_STEPS, Step, Walk, walk
from engine.core.nodes import outputs_of

__all__ = ["CANVAS_TYPES", "MAX_DEFINITION_BYTES", "MAX_EDGES", "MAX_NODES", "MAX_STEPS", "PROBLEM_CODES",
           "DefinitionImportError", "Edge", "FunnelDefinition", "Problem", "Step", "ValidationReport", "Walk",
           "canvas_node", "export_json", "import_json", "load_definition", "outputs_of", "validate_definition", "walk"]
