"""A real local Odoo for the tests: an XML-RPC server (``xmlrpc.server``, threaded, on 127.0.0.1) that speaks the
external API's ``/xmlrpc/2/common`` (``version``, ``authenticate``) and ``/xmlrpc/2/object`` (``execute_kw`` with
``search_read``, ``search``, ``create``, ``write``, ``message_post``, ``check_access_rights``) over in-memory
``crm.lead``, ``crm.tag`` and ``utm.source`` records (plus a few sales teams, stages and users to pick from).

Faults are worded like Odoo's: an unknown database, "Access Denied" for bad credentials, an ``AccessError`` for
missing rights, "Object crm.lead doesn't exist" without the CRM app. ``hold`` (a ``threading.Event``) makes every
call wait for it (a slow server, with no sleep in the tests); ``down`` answers 503 to everything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import MultiPathXMLRPCServer, SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

Fault = __import__("xmlrpc.client", fromlist=["Fault"]).Fault

MODELS = ("crm.lead", "crm.tag", "utm.source", "crm.team", "crm.stage", "res.users")


class _Server(ThreadingMixIn, MultiPathXMLRPCServer):
    daemon_threads = True


@dataclass
class FakeOdoo:
    database: str = "empresa"
    login: str = "bot@empresa.com"
    api_key: str = "chave-api-odoo-123456"
    uid: int = 7
    crm_installed: bool = True
    rights: dict[str, bool] = field(default_factory=lambda: {"read": True, "create": True, "write": True})
    down: bool = False
    hold: threading.Event | None = None
    records: dict[str, dict[int, dict[str, Any]]] = field(default_factory=lambda: {m: {} for m in MODELS} | {
        "crm.team": {1: {"name": "Vendas"}, 2: {"name": "Pós-venda"}},
        "crm.stage": {1: {"name": "Novo"}, 2: {"name": "Qualificado"}},
        "res.users": {7: {"name": "Bot"}, 8: {"name": "Ana Vendas"}}})
    messages: dict[int, list[str]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    server: _Server | None = None
    _next_id: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def leads(self) -> list[dict[str, Any]]:
        return [dict(v, id=k) for k, v in sorted(self.records["crm.lead"].items())]

    def creates(self, model: str = "crm.lead") -> int:
        return sum(1 for m, method in self.calls if (m, method) == (model, "create"))

    # -- the server -------------------------------------------------------------------------------------------

    def start(self) -> FakeOdoo:
        fake = self

        class Handler(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/xmlrpc/2/common", "/xmlrpc/2/object")

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                if fake.hold is not None:
                    fake.hold.wait(30)
                if fake.down:
                    length = int(self.headers.get("content-length") or 0)
                    self.rfile.read(length)
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_POST()

        self.server = _Server(("127.0.0.1", 0), requestHandler=Handler, allow_none=True, logRequests=False)
        common = SimpleXMLRPCDispatcher(allow_none=True)
        common.register_function(self._version, "version")
        common.register_function(self._authenticate, "authenticate")
        obj = SimpleXMLRPCDispatcher(allow_none=True)
        obj.register_function(self._execute_kw, "execute_kw")
        self.server.add_dispatcher("/xmlrpc/2/common", common)
        self.server.add_dispatcher("/xmlrpc/2/object", obj)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- common -----------------------------------------------------------------------------------------------

    def _version(self) -> dict[str, Any]:
        return {"server_version": "17.0+e", "server_version_info": [17, 0, 0, "final", 0, "e"],
                "server_serie": "17.0", "protocol_version": 1}

    def _check_db(self, database: str) -> None:
        if database != self.database:
            raise Fault(1, f'psycopg2.OperationalError: connection failed: FATAL:  database "{database}" does not '
                           "exist")

    def _authenticate(self, database: str, login: str, key: str, _env: dict) -> Any:
        self._check_db(database)
        return self.uid if (login, key) == (self.login, self.api_key) else False

    # -- object -----------------------------------------------------------------------------------------------

    def _execute_kw(self, database: str, uid: int, key: str, model: str, method: str, args: list,
                    kwargs: dict | None = None) -> Any:
        self._check_db(database)
        if uid != self.uid or key != self.api_key:
            raise Fault(3, "Access Denied")
        if model not in MODELS or (model == "crm.lead" and not self.crm_installed):
            raise Fault(1, f"Object {model} doesn't exist")
        kwargs = kwargs or {}
        with self._lock:
            self.calls.append((model, method))
            if method == "check_access_rights":
                allowed = self.rights.get(args[0], False)
                if not allowed and kwargs.get("raise_exception", True):
                    raise self._denied(model, args[0])
                return allowed
            operation = {"search_read": "read", "search": "read", "create": "create", "write": "write",
                         "message_post": "write"}.get(method)
            if operation is None:
                raise Fault(1, f"AttributeError: type object '{model}' has no attribute '{method}'")
            if model == "crm.lead" and not self.rights.get(operation, False):
                raise self._denied(model, operation)
            return getattr(self, f"_{method}")(model, args, kwargs)

    def _denied(self, model: str, operation: str) -> Fault:
        return Fault(4, f"odoo.exceptions.AccessError: You are not allowed to {operation} '{model}' records.")

    def _search(self, model: str, args: list, kwargs: dict) -> list[int]:
        domain = args[0] if args else kwargs.get("domain", [])
        found = [rid for rid, rec in sorted(self.records[model].items()) if _matches(rec, domain)]
        limit = kwargs.get("limit")
        return found[:limit] if limit else found

    def _search_read(self, model: str, args: list, kwargs: dict) -> list[dict[str, Any]]:
        ids = self._search(model, args, kwargs)
        fields = kwargs.get("fields") or (args[1] if len(args) > 1 else None)
        rows = []
        for rid in ids:
            rec = self.records[model][rid]
            rows.append({"id": rid} | {k: rec.get(k, False) for k in (fields or rec)})
        return rows

    def _create(self, model: str, args: list, kwargs: dict) -> int:
        values = dict(args[0])
        self._next_id += 1
        record = {"active": True, "probability": 10.0} if model == "crm.lead" else {}
        for name, value in values.items():
            record[name] = _apply_x2many(record.get(name, []), value) if name.endswith("_ids") else value
        if model == "crm.lead":
            phone = "".join(c for c in str(record.get("phone") or "") if c.isdigit())
            record["phone_sanitized"] = f"+{phone}" if phone else False
        self.records[model][self._next_id] = record
        return self._next_id

    def _write(self, model: str, args: list, kwargs: dict) -> bool:
        ids, values = args[0], args[1]
        for rid in ids:
            record = self.records[model][rid]
            for name, value in values.items():
                record[name] = _apply_x2many(record.get(name, []), value) if name.endswith("_ids") else value
        return True

    def _message_post(self, model: str, args: list, kwargs: dict) -> int:
        ids = args[0] if args else kwargs.get("ids")
        ids = ids if isinstance(ids, list) else [ids]
        for rid in ids:
            self.messages.setdefault(rid, []).append(kwargs.get("body") or "")
        self._next_id += 1
        return self._next_id


def _apply_x2many(current: list[int], commands: Any) -> list[int]:
    result = list(current)
    for command in commands or []:
        if command[0] == 6:
            result = list(command[2])
        elif command[0] == 4 and command[1] not in result:
            result.append(command[1])
    return result


def _leaf(record: dict[str, Any], leaf: list) -> bool:
    name, op, value = leaf
    have = record.get(name, False)
    if op == "=":
        return have == value
    if op == "!=":
        return have != value
    if op == "<":
        return have is not False and have < value
    if op == "in":
        return have in value
    if op == "=ilike":
        return isinstance(have, str) and have.lower() == str(value).lower()
    if op == "ilike":
        return isinstance(have, str) and str(value).lower() in have.lower()
    raise Fault(1, f"ValueError: Invalid leaf {leaf}")


def _matches(record: dict[str, Any], domain: list) -> bool:
    """Odoo's prefix (Polish) domain notation with '|', '&' and '!' over simple leaves; leaves are ANDed."""
    def parse(pos: int) -> tuple[bool, int]:
        item = domain[pos]
        if item == "|":
            left, pos = parse(pos + 1)
            right, pos = parse(pos)
            return left or right, pos
        if item == "&":
            left, pos = parse(pos + 1)
            right, pos = parse(pos)
            return left and right, pos
        if item == "!":
            inner, pos = parse(pos + 1)
            return not inner, pos
        return _leaf(record, list(item)), pos + 1

    pos, result = 0, True
    while pos < len(domain):
        value, pos = parse(pos)
        result = result and value
    if not any(isinstance(i, list | tuple) and i[0] == "active" for i in domain if not isinstance(i, str)):
        result = result and record.get("active", True) is not False
    return result
