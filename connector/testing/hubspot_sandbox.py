"""A local stand-in for HubSpot's CRM v3 API, faithful enough to run the real ``hubspot-api-client`` against.

It answers what the HubSpot destination uses, with HubSpot's status codes, error shapes and messages: batch
upsert / create / update / read / archive, single get and create, a minimal search, properties and property
groups (contacts, companies or any other object name). Add rate limiting (a rolling window, with HubSpot's 429
body and ``X-HubSpot-RateLimit-*`` headers) and seeded fault injection (429, 5xx, timeouts, dropped
connections, and a 5xx *after* the write was applied), and count what arrives, so tests and benchmarks can
assert "exactly once in effect" or "no request at all".

Use::

    with HubSpotSandbox(rate_limit=(190, 10.0)) as sandbox:
        client = HubSpot(access_token="sandbox-token", host=sandbox.url)
        ...
        sandbox.set_faults(FaultPlan(rate_429=0.3, seed=1))
        sandbox.stats()["upserts"]["contacts"]      # how many times each email was upserted

From the command line: ``connector hubspot-sandbox --port 8010`` (or ``python -m
connector.testing.hubspot_sandbox``); over HTTP: ``GET /__sandbox/stats``, ``GET /__sandbox/records/contacts``,
``POST /__sandbox/faults`` (a FaultPlan as JSON), ``POST /__sandbox/rate-limit`` (``{"requests": 190,
"seconds": 10}`` or ``null``), ``POST /__sandbox/reset``.

Where HubSpot's behaviour is not documented the sandbox is strict in the way that is hardest for a client:
results come back in shuffled order and without ``objectWriteTraceId``; ``email`` reports
``hasUniqueValue: false`` although records are matched by it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import click
import orjson

from connector.testing.hubspot_associations import (
    ASSOCIATION_ROUTES,
    ASSOCIATION_WRITE_ROUTES,
    AssociationsMixin,
)
from connector.testing.hubspot_lists import LIST_ROUTES, LIST_WRITE_ROUTES, ListsMixin
from connector.testing.hubspot_schemas import SCHEMA_ROUTES, SCHEMA_WRITE_ROUTES, SchemasMixin

MAX_BATCH = 100
DAILY_LIMIT = 1_000_000
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FIELD_TYPES = {
    "string": {"text", "textarea", "file", "html", "phonenumber"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"checkbox", "radio", "select", "booleancheckbox"},
    "bool": {"booleancheckbox"},
}
ALIASES = {"contact": "contacts", "0-1": "contacts", "company": "companies", "0-2": "companies"}
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
WRITE_ROUTES = {"batch-upsert", "batch-create", "batch-update", "batch-archive", "object-create"}


_last_now: tuple[int, str] = (-1, "")


def _now() -> str:
    """The time as HubSpot writes it (ISO 8601, milliseconds, ``Z``); formatted once per millisecond, as a batch of
    a hundred records asks for it a hundred times."""
    global _last_now
    millis = time.time_ns() // 1_000_000
    last = _last_now
    if last[0] == millis:
        return last[1]
    text = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_now = (millis, text)
    return text


def _loads(raw: bytes) -> Any:
    """A request's JSON: orjson, and json for what orjson refuses (json's error names the line and column)."""
    try:
        return orjson.loads(raw)
    except ValueError:
        return json.loads(raw)


@dataclass
class FaultPlan:
    """Faults injected into API requests, each with its probability per request (seeded: runs repeat).

    ``rate_429`` / ``rate_5xx`` / ``rate_drop`` fail a request before it is applied. ``rate_timeout`` applies it,
    then waits ``timeout_s`` before answering (the client has given up: did it land?). ``rate_5xx_after_write``
    applies a write, then answers 502. ``latency_s`` delays every answer (a slow portal). ``match`` limits faults
    to paths containing it (e.g. ``"/batch/"``).
    Injected 429s carry ``X-HubSpot-RateLimit-*`` headers of the configured limit (else a 10 s interval).
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    rate_5xx_after_write: float = 0.0
    timeout_s: float = 2.0
    seed: int | None = 0
    match: str | None = None
    retry_after_s: float | None = None  # sent as Retry-After on injected 429s (HubSpot does not document one)
    latency_s: float = 0.0  # every answered request (matching ``match``) waits this long first: a slow portal

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, or bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        try:
            return orjson.dumps(self.body)
        except TypeError:  # what orjson cannot write (an integer beyond 64 bits)
            return json.dumps(self.body, separators=(",", ":")).encode()


class _BatchRefused(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _error(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> Reply:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return Reply(status, body)


def _refuse(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> _BatchRefused:
    return _BatchRefused(_error(status, message, category, **extra))


class _RollingLimit:
    """At most ``requests`` in any ``seconds``-long window (HubSpot's TEN_SECONDLY_ROLLING)."""

    def __init__(self, requests: int, seconds: float) -> None:
        self.requests, self.seconds = requests, seconds
        self.sent: deque[float] = deque()
        self.daily = 0

    def take(self, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until a request would be allowed)."""
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        if len(self.sent) >= self.requests:
            return False, 0, self.sent[0] + self.seconds - now
        self.sent.append(now)
        self.daily += 1
        return True, self.requests - len(self.sent), 0.0

    def headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.seconds * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.requests),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(DAILY_LIMIT - self.daily, 0)),
        }


def _property(
    name: str,
    label: str,
    group: str,
    type_: str = "string",
    field_type: str = "text",
    *,
    options: Iterable[tuple[str, str]] = (),
    read_only: bool = False,
    hubspot_defined: bool = True,
) -> dict[str, Any]:
    now = _now()
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": "",
        "groupName": group,
        "options": [
            {"label": lbl, "value": val, "displayOrder": i, "hidden": False} for i, (lbl, val) in enumerate(options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "createdAt": now,
        "updatedAt": now,
        "archived": False,
    }


def _default_schema(object_type: str) -> tuple[dict[str, dict], dict[str, dict], set[str], str, list[str]]:
    """(properties, groups, unique property names, last-modified property, properties returned by default)."""
    if object_type == "contacts":
        group = "contactinformation"
        lifecycle = [
            "subscriber",
            "lead",
            "marketingqualifiedlead",
            "salesqualifiedlead",
            "opportunity",
            "customer",
            "evangelist",
            "other",
        ]
        props = [
            _property("email", "Email", group),
            _property("firstname", "First Name", group),
            _property("lastname", "Last Name", group),
            _property("phone", "Phone Number", group, field_type="phonenumber"),
            _property("company", "Company Name", group),
            _property("website", "Website URL", group),
            _property("jobtitle", "Job Title", group),
            _property("city", "City", group),
            _property("country", "Country/Region", group),
            _property(
                "lifecyclestage",
                "Lifecycle Stage",
                group,
                "enumeration",
                "radio",
                options=[(s.title(), s) for s in lifecycle],
            ),
            _property("hs_object_id", "Record ID", group, "number", "number", read_only=True),
            _property("createdate", "Create Date", group, "datetime", "date", read_only=True),
            _property("lastmodifieddate", "Last Modified Date", group, "datetime", "date", read_only=True),
        ]
        unique, modified, default = {"email", "hs_object_id"}, "lastmodifieddate", ["firstname", "lastname", "email"]
    elif object_type == "companies":
        group = "companyinformation"
        props = [
            _property("name", "Company name", group),
            _property("domain", "Company Domain Name", group),
            _property("industry", "Industry", group),
            _property("phone", "Phone Number", group, field_type="phonenumber"),
            _property("city", "City", group),
            _property("country", "Country/Region", group),
            _property("numberofemployees", "Number of Employees", group, "number", "number"),
            _property("annualrevenue", "Annual Revenue", group, "number", "number"),
            _property("hs_object_id", "Record ID", group, "number", "number", read_only=True),
            _property("createdate", "Create Date", group, "datetime", "date", read_only=True),
            _property("hs_lastmodifieddate", "Last Modified Date", group, "datetime", "date", read_only=True),
        ]
        unique, modified, default = {"hs_object_id"}, "hs_lastmodifieddate", ["name", "domain"]
    else:
        group = object_type.rstrip("s") + "information"
        props = [
            _property("name", "Name", group),
            _property("hs_object_id", "Record ID", group, "number", "number", read_only=True),
            _property("createdate", "Create Date", group, "datetime", "date", read_only=True),
            _property("hs_lastmodifieddate", "Last Modified Date", group, "datetime", "date", read_only=True),
        ]
        unique, modified, default = {"hs_object_id"}, "hs_lastmodifieddate", ["name"]
    groups = {
        group: {
            "name": group,
            "label": group.replace("information", " information").title(),
            "displayOrder": -1,
            "archived": False,
        }
    }
    return {p["name"]: p for p in props}, groups, unique, modified, default


class _Store:
    """The records, properties and groups of one object type, with an index per unique property."""

    def __init__(self, object_type: str) -> None:
        self.object_type = object_type
        self.type_id = OBJECT_TYPE_IDS.get(object_type, "2-" + str(abs(hash(object_type)) % 10_000_000))
        self.properties, self.groups, self.unique, self.modified, self.default_read = _default_schema(object_type)
        self.records: dict[str, dict[str, Any]] = {}
        self.archived: dict[str, dict[str, Any]] = {}
        self.indexes: dict[str, dict[str, str]] = {name: {} for name in self.unique if name != "hs_object_id"}

    @property
    def singular(self) -> str:
        return {"contacts": "Contact", "companies": "Company"}.get(self.object_type, self.object_type.rstrip("s"))

    def normal(self, name: str, value: str) -> str:
        return value.strip().lower() if name == "email" else value

    def find(self, id_property: str | None, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        value = str(value)
        if not id_property or id_property == "hs_object_id":
            return self.records.get(value)
        return self.records.get(self.indexes.get(id_property, {}).get(self.normal(id_property, value), ""))

    def is_unique(self, name: str) -> bool:
        return name in self.unique


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubSpotSandbox/1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one write below; without TCP_NODELAY Nagle + delayed ACK cost ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sandbox = self.server.sandbox
        try:
            reply = sandbox.handle(self.command, self.path, self.headers, raw)
        except Exception:  # a bug in the sandbox: say so loudly, answer like HubSpot's 500
            traceback.print_exc(file=sys.stderr)
            reply = _error(500, "internal error", "INTERNAL_ERROR")
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.delay:
            sandbox._stopping.wait(reply.delay)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        body = reply.payload()
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {reply.status} {phrase}", f"Date: {self.date_time_string()}", "Server: HubSpotSandbox"]
        if reply.status != 204:
            lines.append(f"Content-Length: {len(body)}")
            if body:
                lines.append("Content-Type: application/json;charset=utf-8")
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:  # the client gave up (a timeout fault) or went away
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256
    sandbox: HubSpotSandbox


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), name)
    for m, p, name in [
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)/batch/upsert$", "batch-upsert"),
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)/batch/create$", "batch-create"),
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)/batch/update$", "batch-update"),
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)/batch/read$", "batch-read"),
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)/batch/archive$", "batch-archive"),
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)/search$", "search"),
        ("POST", r"^/crm/v3/objects/(?P<obj>[^/]+)$", "object-create"),
        ("GET", r"^/crm/v3/objects/(?P<obj>[^/]+)$", "object-list"),
        ("GET", r"^/crm/v3/objects/(?P<obj>[^/]+)/(?P<id>[^/]+)$", "object-get"),
        ("GET", r"^/crm/v3/properties/(?P<obj>[^/]+)/groups$", "groups-list"),
        ("POST", r"^/crm/v3/properties/(?P<obj>[^/]+)/groups$", "group-create"),
        ("GET", r"^/crm/v3/properties/(?P<obj>[^/]+)/groups/(?P<name>[^/]+)$", "group-get"),
        ("GET", r"^/crm/v3/properties/(?P<obj>[^/]+)$", "properties-list"),
        ("POST", r"^/crm/v3/properties/(?P<obj>[^/]+)$", "property-create"),
        ("GET", r"^/crm/v3/properties/(?P<obj>[^/]+)/(?P<name>[^/]+)$", "property-get"),
        ("PATCH", r"^/crm/v3/properties/(?P<obj>[^/]+)/(?P<name>[^/]+)$", "property-update"),
        ("DELETE", r"^/crm/v3/properties/(?P<obj>[^/]+)/(?P<name>[^/]+)$", "property-archive"),
        *LIST_ROUTES,
        *ASSOCIATION_ROUTES,
        *SCHEMA_ROUTES,
    ]
]
WRITE_ROUTES |= (
    {"group-create", "property-create", "property-update", "property-archive"}
    | LIST_WRITE_ROUTES
    | ASSOCIATION_WRITE_ROUTES
    | SCHEMA_WRITE_ROUTES
)


class HubSpotSandbox(ListsMixin, AssociationsMixin, SchemasMixin):
    """The fake HubSpot. ``token=None`` accepts any bearer token; ``rate_limit=(requests, seconds)``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = "sandbox-token",
        *,
        rate_limit: tuple[int, float] | None = None,
        faults: FaultPlan | None = None,
        readonly_tokens: Iterable[str] = (),
        send_retry_after: bool = False,
        shuffle_results: bool = True,
        whole_batch_errors: bool = False,
        seed: int = 0,
    ) -> None:
        self.host, self.port, self.token = host, port, token
        # Refuse a whole batch for any bad input even when every input has an objectWriteTraceId (what HubSpot
        # does without them; for upserts the 207 answer is reported, not documented).
        self.whole_batch_errors = whole_batch_errors
        self.readonly_tokens = frozenset(readonly_tokens)
        self.send_retry_after = send_retry_after
        self.shuffle_results = shuffle_results
        self._seed = seed
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._rate_limit = rate_limit
        self._faults = faults
        self._reset_state()

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> HubSpotSandbox:
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hubspot-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Run (starting if needed) until interrupted or stopped."""
        if self._server is None:
            self.start()
        try:
            while not self._stopping.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> HubSpotSandbox:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- controls and observations ----------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self._stores: dict[str, _Store] = {}
            self._next_id = 1000
            self._limit = _RollingLimit(*self._rate_limit) if self._rate_limit else None
            self._results_rng = random.Random(self._seed)
            self.set_faults(self._faults)
            self._requests: Counter[str] = Counter()
            self._writes: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._upserts: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._created: Counter[str] = Counter()
            self._fault_counts: Counter[str] = Counter()
            self._rejected_inputs = 0
            self._refused_batches = 0
            self._rate_limited = 0
            self._reset_lists()
            self._reset_associations()
            self._reset_schemas()

    def reset(self) -> None:
        """Forget every record, property change, counter and fault."""
        with self._lock:
            self._faults = None
            self._reset_state()

    def set_faults(self, faults: FaultPlan | None = None, **rates: Any) -> None:
        """Inject faults from now on (``set_faults()`` stops them); keyword arguments build a FaultPlan."""
        plan = faults if faults is not None or not rates else FaultPlan(**rates)
        with self._lock:
            self._faults = plan
            self._fault_rng = random.Random(plan.seed if plan else None)

    def set_rate_limit(self, rate_limit: tuple[int, float] | None) -> None:
        with self._lock:
            self._rate_limit = rate_limit
            self._limit = _RollingLimit(*rate_limit) if rate_limit else None

    def stats(self) -> dict[str, Any]:
        """Counters: requests by "METHOD path", writes per record id and upserts per identity (by object),
        records created, inputs rejected, batches refused whole, 429s sent and faults injected."""
        with self._lock:
            return {
                "requests": dict(self._requests),
                "writes": {obj: dict(c) for obj, c in self._writes.items()},
                "upserts": {obj: dict(c) for obj, c in self._upserts.items()},
                "created": dict(self._created),
                "records": {obj: len(store.records) for obj, store in self._stores.items()},
                "rejected_inputs": self._rejected_inputs,
                "refused_batches": self._refused_batches,
                "rate_limited": self._rate_limited,
                "faults": dict(self._fault_counts),
            }

    def records(self, object_type: str) -> list[dict[str, Any]]:
        """Every live record: ``{"id", "properties", "createdAt", "updatedAt", "archived"}``, by id."""
        with self._lock:
            store = self._store(object_type)
            return [copy.deepcopy(r) for r in sorted(store.records.values(), key=lambda r: int(r["id"]))]

    def record(self, object_type: str, value: str, id_property: str = "hs_object_id") -> dict[str, Any] | None:
        with self._lock:
            found = self._store(object_type).find(id_property, value)
            return copy.deepcopy(found) if found else None

    def property(self, object_type: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            prop = self._store(object_type).properties.get(name)
            return copy.deepcopy(prop) if prop else None

    def _store(self, object_type: str) -> _Store:
        name = ALIASES.get(object_type.lower()) or self.custom_object_name(object_type) or object_type.lower()
        store = self._stores.get(name)
        if store is None:
            store = self._stores[name] = _Store(name)
        return store

    # -- requests ---------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        url = urlsplit(target)
        path, query = url.path.rstrip("/") or "/", parse_qs(url.query)
        if path.startswith("/__sandbox/"):
            return self._admin(method, path, raw)
        with self._lock:
            self._requests[f"{method} {path}"] += 1

        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if (
            not token
            or not (headers.get("Authorization") or "").startswith("Bearer ")
            or (self.token is not None and token != self.token and token not in self.readonly_tokens)
        ):
            return _error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")

        route, params = self._route(method, path)
        if route is None:
            return _error(404, f"Unable to route {method} {path}", "OBJECT_NOT_FOUND")
        with self._lock:
            unknown = self._unknown_object(params.get("obj"))
        if unknown is not None:
            return unknown
        writes = route in WRITE_ROUTES
        if writes and token in self.readonly_tokens:
            return _error(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more about required "
                "scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [f"crm.objects.{params.get('obj')}.write"]},
                    }
                ],
            )

        limit_headers: dict[str, str] = {}
        fault = after_write = None
        with self._lock:
            if self._limit is not None:
                allowed, remaining, wait = self._limit.take(time.monotonic())
                limit_headers = self._limit.headers(remaining)
                if not allowed:
                    self._rate_limited += 1
                    return self._too_many(limit_headers, wait)
            plan = self._faults
            if plan is not None and (plan.match is None or plan.match in path):
                fault, after_write = self._draw(plan, writes)
        if fault == "429":
            headers = limit_headers or {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
            if plan is not None and plan.retry_after_s is not None:
                headers = {**headers, "Retry-After": f"{plan.retry_after_s:g}"}
            return self._too_many(headers, 1.0)
        if fault in ("500", "502", "503", "504"):
            return _error(int(fault), "The service is temporarily unavailable.", "INTERNAL_ERROR")
        if fault == "drop":
            return Reply(0, drop=True)

        try:
            body = _loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return _error(400, f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}")
        try:
            with self._lock:
                reply = getattr(self, "_" + route.replace("-", "_"))(body=body, query=query, **params)
        except _BatchRefused as refused:
            with self._lock:
                self._refused_batches += 1
            reply = refused.reply

        if after_write and 200 <= reply.status < 300:
            reply = _error(502, "Bad gateway", "INTERNAL_ERROR")
        reply.headers.update(limit_headers)
        if fault == "timeout":
            reply.delay = plan.timeout_s if plan else 0.0
        if plan is not None and plan.latency_s > 0 and (plan.match is None or plan.match in path):
            reply.delay += plan.latency_s
        return reply

    @staticmethod
    def _answer(status: int, body: Any) -> Reply:
        return Reply(status, body)

    @staticmethod
    def _fail(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> Reply:
        return _error(status, message, category, **extra)

    def _draw(self, plan: FaultPlan, writes: bool) -> tuple[str | None, bool]:
        roll = self._fault_rng.random()
        fault = None
        for name, rate in (
            ("429", plan.rate_429),
            ("5xx", plan.rate_5xx),
            ("drop", plan.rate_drop),
            ("timeout", plan.rate_timeout),
        ):
            if roll < rate:
                fault = self._fault_rng.choice(["500", "502", "503", "504"]) if name == "5xx" else name
                break
            roll -= rate
        after_write = writes and fault in (None, "timeout") and self._fault_rng.random() < plan.rate_5xx_after_write
        if fault:
            self._fault_counts["5xx" if fault.isdigit() and fault != "429" else fault] += 1
        if after_write:
            self._fault_counts["5xx_after_write"] += 1
        return fault, after_write

    def _too_many(self, headers: dict[str, str], wait: float) -> Reply:
        body = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "TEN_SECONDLY_ROLLING",
            "groupName": "sandbox",
        }
        headers = {**headers, "X-HubSpot-RateLimit-Remaining": "0"}
        if self.send_retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return Reply(429, body, headers)

    @staticmethod
    def _route(method: str, path: str) -> tuple[str | None, dict[str, str]]:
        for route_method, pattern, name in ROUTES:
            if route_method == method:
                match = pattern.match(path)
                if match:
                    return name, {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _admin(self, method: str, path: str, raw: bytes) -> Reply:
        try:
            body = _loads(raw) if raw.strip() else None
        except ValueError:
            return Reply(400, {"message": "invalid JSON"})
        if path == "/__sandbox/stats" and method == "GET":
            return Reply(200, self.stats())
        if path == "/__sandbox/reset" and method == "POST":
            self.reset()
            return Reply(204)
        if path == "/__sandbox/faults":
            if method == "POST":
                try:
                    self.set_faults(FaultPlan.from_dict(body) if body else None)
                except (TypeError, ValueError) as exc:
                    return Reply(400, {"message": str(exc)})
            with self._lock:
                return Reply(200, asdict(self._faults) if self._faults else None)
        if path == "/__sandbox/rate-limit" and method == "POST":
            self.set_rate_limit((int(body["requests"]), float(body["seconds"])) if body else None)
            return Reply(204)
        if path.startswith("/__sandbox/records/") and method == "GET":
            return Reply(200, {"results": self.records(unquote(path.rsplit("/", 1)[1]))})
        return Reply(404, {"message": f"no sandbox endpoint {method} {path}"})

    # -- values -----------------------------------------------------------------------------------------------

    def _invalid(self, store: _Store, name: str, value: Any) -> tuple[str, dict[str, Any] | None]:
        """The stored form of a value, or an error detail in HubSpot's shape."""
        prop = store.properties.get(name)
        if prop is None:
            return "", _detail(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST", name)
        if prop["modificationMetadata"]["readOnlyValue"]:
            return "", _detail(f"{name} is a read only property; its value cannot be set.", "READ_ONLY_VALUE", name)
        text = "" if value is None else ("true" if value is True else "false" if value is False else str(value))
        if text == "":
            return "", None
        kind, field_type = prop["type"], prop["fieldType"]
        if name == "email" and store.object_type == "contacts":
            text = text.strip().lower()
            if not EMAIL.match(text):
                return "", _detail(f"Email address {value} is invalid", "INVALID_EMAIL", name)
        elif kind == "number":
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return "", _detail(f"{text} was not a valid number.", "INVALID_INTEGER", name)
        elif kind == "date":
            if not (DATE.match(text) or (text.isdigit() and int(text) % 86_400_000 == 0)):
                return "", _detail(
                    f"{text} is not a valid date (YYYY-MM-DD or midnight UTC in ms)", "INVALID_DATE", name
                )
        elif kind == "datetime":
            if not text.isdigit():
                try:
                    datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    return "", _detail(f"{text} is not a valid datetime", "INVALID_DATE", name)
        elif kind in ("enumeration", "bool"):
            allowed = {o["value"] for o in prop["options"]} if prop["options"] else {"true", "false"}
            if kind == "bool":
                text = text.lower()
            chosen = text.split(";") if field_type == "checkbox" else [text]
            bad = [v for v in chosen if v and v not in allowed]
            if bad:
                listed = ", ".join(sorted(allowed))
                return "", _detail(f"{bad[0]} was not one of the allowed options: [{listed}]", "INVALID_OPTION", name)
        return text, None

    def _check_properties(self, store: _Store, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        if not isinstance(properties, dict):
            return {}, [_detail("properties must be an object", "INVALID_PROPERTIES", "properties")]
        values, details = {}, []
        for name, value in properties.items():
            stored, detail = self._invalid(store, name, value)
            if detail:
                details.append(detail)
            else:
                values[name] = stored
        return values, details

    def _apply(self, store: _Store, record: dict[str, Any] | None, values: Mapping[str, str]) -> dict[str, Any]:
        now = _now()
        if record is None:
            self._next_id += 1
            record_id = str(self._next_id)
            record = {
                "id": record_id,
                "properties": {"hs_object_id": record_id, "createdate": now},
                "createdAt": now,
                "updatedAt": now,
                "archived": False,
            }
            store.records[record_id] = record
            self._created[store.object_type] += 1
        props = record["properties"]
        for name, value in values.items():
            index = store.indexes.get(name)
            if index is not None:
                old = props.get(name)
                if old and index.get(store.normal(name, old)) == record["id"]:
                    del index[store.normal(name, old)]
                if value:
                    index[store.normal(name, value)] = record["id"]
            props[name] = value
        props[store.modified] = now
        record["updatedAt"] = now
        self._writes[store.object_type][record["id"]] += 1
        return record

    def _unique_clash(
        self, store: _Store, owner: str, values: Mapping[str, str], claimed: dict[tuple[str, str], str]
    ) -> dict[str, Any] | None:
        """A unique value already held by another record, stored or claimed by an earlier input of this batch.

        ``owner`` is the record's id, or for a record still to be created, a name for its input."""
        for name, value in values.items():
            if name in store.indexes and value:
                key = (name, store.normal(name, value))
                holder = store.indexes[name].get(key[1]) or claimed.get(key)
                if holder is not None and holder != owner:
                    return _detail(f"A {store.singular.lower()} with {name} {value} already exists.", "CONFLICT", name)
                claimed[key] = owner
        return None

    def _public(self, store: _Store, record: dict[str, Any], names: Iterable[str], **extra: Any) -> dict[str, Any]:
        props = record["properties"]
        wanted = dict.fromkeys([*names, "hs_object_id", "createdate", store.modified])
        return {
            "id": record["id"],
            "properties": {name: props.get(name) for name in wanted},
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": False,
            **extra,
        }

    # -- batches ----------------------------------------------------------------------------------------------

    @staticmethod
    def _inputs(body: Any) -> list[Any]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise _refuse(400, "Invalid input JSON: inputs must be an array")
        if len(inputs) > MAX_BATCH:
            raise _refuse(
                400,
                f"The maximum number of inputs supported in a batch is {MAX_BATCH}. Please reduce the number of "
                "inputs and try again.",
                context={"maxInputs": [str(MAX_BATCH)]},
            )
        if not all(isinstance(i, dict) for i in inputs):
            raise _refuse(400, "Invalid input JSON: every input must be an object")
        return inputs

    def _id_property(self, store: _Store, name: str | None, for_upsert: bool) -> str:
        name = name or "hs_object_id"
        if name not in store.properties:
            raise _refuse(
                400,
                f'Property "{name}" does not exist',
                errors=[_detail(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST", name)],
            )
        if not store.is_unique(name):
            verb = "update/upsert" if for_upsert else "read"
            raise _refuse(400, f"Unable to perform {verb} by non-unique {store.type_id} property")
        return name

    @staticmethod
    def _no_duplicates(store: _Store, id_property: str, ids: list[Any]) -> None:
        seen: set[str] = set()
        duplicates: list[str] = []
        for value in ids:
            key = store.normal(id_property, str(value))
            if key in seen and str(value) not in duplicates:
                duplicates.append(str(value))
            seen.add(key)
        if duplicates:
            raise _refuse(
                400,
                f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique",
                context={"ids": duplicates},
            )

    def _settle(
        self, store: _Store, inputs: list[dict], failures: dict[int, dict[str, Any]], apply, success: int
    ) -> Reply:
        """Write the valid inputs and answer 200/201, or 207 naming failed inputs by trace id, or refuse the
        whole batch when some input has no unique objectWriteTraceId."""
        traces = [i.get("objectWriteTraceId") for i in inputs]
        traced = all(isinstance(t, str) and t for t in traces) and len(set(traces)) == len(traces)
        if failures and (not traced or self.whole_batch_errors):
            self._rejected_inputs += len(failures)
            first = failures[min(failures)]
            status = 409 if first["category"] == "CONFLICT" else 400
            details = [d for f in failures.values() for d in f["errors"]]
            raise _refuse(status, first["message"], first["category"], errors=details)
        started = _now()
        results = [apply(i, item) for i, item in enumerate(inputs) if i not in failures]
        results = [r for r in results if r is not None]
        if self.shuffle_results:
            self._results_rng.shuffle(results)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}
        if not failures:
            return Reply(success, body)
        self._rejected_inputs += len(failures)
        errors = []
        for i, failure in failures.items():
            errors.append({**failure, "context": {**failure.get("context", {}), "objectWriteTraceId": [traces[i]]}})
        body.update(numErrors=len(errors), errors=errors)
        return Reply(207, body)

    def _batch_upsert(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        inputs = self._inputs(body)
        id_properties = {i.get("idProperty") or "hs_object_id" for i in inputs}
        for name in sorted(id_properties):
            self._id_property(store, name, for_upsert=True)
        for name in sorted(id_properties):
            self._no_duplicates(
                store, name, [i.get("id") for i in inputs if (i.get("idProperty") or "hs_object_id") == name]
            )
        failures: dict[int, dict[str, Any]] = {}
        prepared: dict[int, tuple[dict | None, dict[str, str], str]] = {}
        claimed: dict[tuple[str, str], str] = {}
        for i, item in enumerate(inputs):
            id_property = item.get("idProperty") or "hs_object_id"
            values, details = self._check_properties(store, item.get("properties") or {})
            record = store.find(id_property, item.get("id"))
            if id_property == "hs_object_id":
                if record is None:
                    details.append(_detail(f"Object {item.get('id')} not found", "OBJECT_NOT_FOUND", "id"))
            else:
                stored, detail = self._invalid(store, id_property, item.get("id"))
                if detail:
                    details.append(detail)
                elif not stored:
                    details.append(_detail(f"Missing value for {id_property}", "INVALID_ID", id_property))
                else:
                    values[id_property] = stored
            if not details:
                clash = self._unique_clash(store, record["id"] if record else f"input {i}", values, claimed)
                if clash:
                    details.append(clash)
            if details:
                failures[i] = _input_error(details)
            else:
                prepared[i] = (record, values, id_property)

        def apply(i: int, item: dict) -> dict[str, Any]:
            record, values, id_property = prepared[i]
            written = self._apply(store, record, values)
            if id_property != "hs_object_id":
                self._upserts[store.object_type][store.normal(id_property, values[id_property])] += 1
            return self._public(store, written, values, new=record is None)

        return self._settle(store, inputs, failures, apply, 200)

    def _batch_create(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        inputs = self._inputs(body)
        failures: dict[int, dict[str, Any]] = {}
        prepared: dict[int, dict[str, str]] = {}
        claimed: dict[tuple[str, str], str] = {}
        for i, item in enumerate(inputs):
            values, details = self._check_properties(store, item.get("properties") or {})
            if not details:
                for name in store.indexes:
                    existing = store.find(name, values.get(name)) if values.get(name) else None
                    if existing is not None:
                        failures[i] = _input_error(
                            [
                                _detail(
                                    f"{store.singular} already exists. Existing ID: {existing['id']}", "CONFLICT", name
                                )
                            ],
                            category="CONFLICT",
                            message=f"{store.singular} already exists. Existing ID: {existing['id']}",
                        )
                        break
                else:
                    clash = self._unique_clash(store, f"input {i}", values, claimed)
                    if clash:
                        details.append(clash)
            if details:
                failures[i] = _input_error(details)
            elif i not in failures:
                prepared[i] = values

        def apply(i: int, item: dict) -> dict[str, Any]:
            return self._public(store, self._apply(store, None, prepared[i]), prepared[i])

        return self._settle(store, inputs, failures, apply, 201)

    def _batch_update(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        inputs = self._inputs(body)
        id_properties = {i.get("idProperty") or "hs_object_id" for i in inputs}
        for name in sorted(id_properties):
            self._id_property(store, name, for_upsert=True)
            self._no_duplicates(
                store, name, [i.get("id") for i in inputs if (i.get("idProperty") or "hs_object_id") == name]
            )
        failures: dict[int, dict[str, Any]] = {}
        prepared: dict[int, tuple[dict, dict[str, str]]] = {}
        claimed: dict[tuple[str, str], str] = {}
        for i, item in enumerate(inputs):
            record = store.find(item.get("idProperty"), item.get("id"))
            if record is None:
                failures[i] = _input_error(
                    [], category="OBJECT_NOT_FOUND", message="Object not found.  objectId are usually numeric."
                )
                continue
            values, details = self._check_properties(store, item.get("properties") or {})
            if not details:
                clash = self._unique_clash(store, record["id"], values, claimed)
                if clash:
                    details.append(clash)
            if details:
                failures[i] = _input_error(details)
            else:
                prepared[i] = (record, values)

        def apply(i: int, item: dict) -> dict[str, Any]:
            record, values = prepared[i]
            return self._public(store, self._apply(store, record, values), values)

        return self._settle(store, inputs, failures, apply, 200)

    def _batch_read(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        inputs = self._inputs(body)
        id_property = self._id_property(store, body.get("idProperty"), for_upsert=False)
        names = body.get("properties") or store.default_read
        archived = (query.get("archived") or ["false"])[0] == "true"
        results, missing = [], []
        for item in inputs:
            if archived:
                record = next(
                    (
                        r
                        for r in store.archived.values()
                        if str(r["properties"].get(id_property, r["id"])) == str(item.get("id"))
                    ),
                    None,
                )
            else:
                record = store.find(id_property, item.get("id"))
            if record is None:
                missing.append(str(item.get("id")))
            else:
                results.append(self._public(store, record, names))
        body_out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": _now(),
            "completedAt": _now(),
        }
        if not missing:
            return Reply(200, body_out)
        body_out["numErrors"] = 1
        body_out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {store.singular.upper()} objects, they may be deleted or not exist. "
                "Check that ids are valid.",
                "context": {"ids": missing},
            }
        ]
        return Reply(207, body_out)

    def _batch_archive(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        for item in self._inputs(body):
            record = store.records.pop(str(item.get("id")), None)
            if record is None:
                continue  # archiving what is not there is not an error
            for name, index in store.indexes.items():
                value = record["properties"].get(name)
                if value and index.get(store.normal(name, value)) == record["id"]:
                    del index[store.normal(name, value)]
            record["archived"] = True
            record["archivedAt"] = _now()
            store.archived[record["id"]] = record
        return Reply(204)

    # -- single objects and search ----------------------------------------------------------------------------

    def _object_create(self, obj: str, body: Any, query: Any) -> Reply:
        item = {k: v for k, v in body.items() if k != "objectWriteTraceId"} if isinstance(body, dict) else {}
        reply = self._batch_create(obj, {"inputs": [item]}, query)
        return Reply(201, reply.body["results"][0])

    def _object_get(self, obj: str, id: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        id_property = (query.get("idProperty") or [None])[0]
        record = store.find(id_property, id)
        if record is None:
            return _error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        names = [n for v in query.get("properties", []) for n in v.split(",") if n] or store.default_read
        return Reply(200, self._public(store, record, names))

    def _object_list(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        limit = min(int((query.get("limit") or ["10"])[0]), 100)
        after = int((query.get("after") or ["0"])[0])
        names = [n for v in query.get("properties", []) for n in v.split(",") if n] or store.default_read
        ordered = sorted(store.records.values(), key=lambda r: int(r["id"]))
        page = [r for r in ordered if int(r["id"]) > after][:limit]
        out: dict[str, Any] = {"results": [self._public(store, r, names) for r in page]}
        if len(page) == limit and page and int(page[-1]["id"]) < int(ordered[-1]["id"]):
            out["paging"] = {"next": {"after": page[-1]["id"]}}
        return Reply(200, out)

    def _search(self, obj: str, body: Any, query: Any) -> Reply:
        """EQ, NEQ, IN, HAS_PROPERTY, NOT_HAS_PROPERTY; filter groups OR-ed, filters in a group AND-ed."""
        store = self._store(obj)
        groups = body.get("filterGroups") or []
        limit = min(int(body.get("limit") or 10), 200)
        offset = int(body.get("after") or 0)
        names = body.get("properties") or store.default_read

        def matches(record: dict[str, Any], flt: dict[str, Any]) -> bool:
            name, op = flt.get("propertyName"), (flt.get("operator") or "EQ").upper()
            value = record["properties"].get(name) or ""
            if name == "hs_object_id":
                value = record["id"]
            want = store.normal(name, str(flt.get("value", "")))
            have = store.normal(name, value)
            if op == "EQ":
                return have == want
            if op == "NEQ":
                return have != want
            if op == "IN":
                return have in {store.normal(name, str(v)) for v in flt.get("values") or []}
            if op == "HAS_PROPERTY":
                return value != ""
            if op == "NOT_HAS_PROPERTY":
                return value == ""
            raise _refuse(400, f"Unsupported operator {op} (the sandbox knows EQ, NEQ, IN, HAS_PROPERTY)")

        candidates: Iterable[dict[str, Any]] = store.records.values()
        if len(groups) == 1 and len(groups[0].get("filters") or []) == 1:
            only = groups[0]["filters"][0]
            if (only.get("operator") or "EQ").upper() == "EQ" and (
                only.get("propertyName") in store.indexes or only.get("propertyName") == "hs_object_id"
            ):
                found = store.find(only["propertyName"], only.get("value"))
                candidates = [found] if found else []
        hits = [
            r
            for r in candidates
            if not groups or any(all(matches(r, f) for f in g.get("filters") or []) for g in groups)
        ]
        hits.sort(key=lambda r: int(r["id"]))
        page = hits[offset : offset + limit]
        out: dict[str, Any] = {"total": len(hits), "results": [self._public(store, r, names) for r in page]}
        if offset + limit < len(hits):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return Reply(200, out)

    # -- properties -------------------------------------------------------------------------------------------

    def _properties_list(self, obj: str, body: Any, query: Any) -> Reply:
        return Reply(200, {"results": list(self._store(obj).properties.values())})

    def _property_get(self, obj: str, name: str, body: Any, query: Any) -> Reply:
        prop = self._store(obj).properties.get(name)
        if prop is None:
            return _error(404, f"Property {name} does not exist", "OBJECT_NOT_FOUND")
        return Reply(200, prop)

    def _property_create(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        if not isinstance(body, dict):
            return _error(400, "Invalid input JSON: expected an object")
        for required in ("name", "label", "type", "fieldType", "groupName"):
            if not body.get(required):
                return _error(
                    400,
                    f"Invalid input JSON: {required} is required",
                    errors=[_detail(f"{required} is required", "REQUIRED_FIELD", required)],
                )
        name = body["name"]
        if not PROPERTY_NAME.match(name):
            return _error(
                400,
                f"Property name {name!r} is invalid: use lowercase letters, digits and underscores, "
                "starting with a letter",
            )
        if name in store.properties:
            return _error(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        if body["groupName"] not in store.groups:
            return _error(400, f"Property group '{body['groupName']}' does not exist.")
        problem = _type_problem(body.get("type"), body.get("fieldType"))
        options, problem = (None, problem) if problem else _options(body.get("options"))
        if problem:
            return _error(400, problem)
        if body["type"] == "bool" and not options:
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        prop = _property(name, body["label"], body["groupName"], body["type"], body["fieldType"], hubspot_defined=False)
        prop.update(
            description=body.get("description") or "",
            options=options or [],
            displayOrder=body.get("displayOrder", -1),
            hasUniqueValue=bool(body.get("hasUniqueValue")),
            hidden=bool(body.get("hidden")),
            formField=bool(body.get("formField", False)),
        )
        prop.pop("hubspotDefined")
        store.properties[name] = prop
        if prop["hasUniqueValue"]:
            store.unique.add(name)
            store.indexes[name] = {}
        return Reply(201, prop)

    def _property_update(self, obj: str, name: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        prop = store.properties.get(name)
        if prop is None:
            return _error(404, f"Property {name} does not exist", "OBJECT_NOT_FOUND")
        if not isinstance(body, dict):
            return _error(400, "Invalid input JSON: expected an object")
        changed = dict(prop)
        for key in ("label", "description", "groupName", "displayOrder", "hidden", "formField", "type", "fieldType"):
            if key in body and body[key] is not None:
                changed[key] = body[key]
        if changed["groupName"] not in store.groups:
            return _error(400, f"Property group '{changed['groupName']}' does not exist.")
        problem = _type_problem(changed["type"], changed["fieldType"])
        if problem:
            return _error(400, problem)
        if body.get("options") is not None:  # options replace the whole list
            options, problem = _options(body["options"])
            if problem:
                return _error(400, problem)
            changed["options"] = options
        changed["updatedAt"] = _now()
        prop.clear()
        prop.update(changed)
        return Reply(200, prop)

    def _property_archive(self, obj: str, name: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        prop = store.properties.get(name)
        if prop is None:
            return _error(404, f"Property {name} does not exist", "OBJECT_NOT_FOUND")
        if prop.get("hubspotDefined"):
            return _error(400, f"Property {name} is a HubSpot-defined property and cannot be archived.")
        del store.properties[name]
        store.unique.discard(name)
        store.indexes.pop(name, None)
        return Reply(204)

    def _groups_list(self, obj: str, body: Any, query: Any) -> Reply:
        return Reply(200, {"results": list(self._store(obj).groups.values())})

    def _group_get(self, obj: str, name: str, body: Any, query: Any) -> Reply:
        group = self._store(obj).groups.get(name)
        if group is None:
            return _error(404, f"Property group {name} does not exist", "OBJECT_NOT_FOUND")
        return Reply(200, group)

    def _group_create(self, obj: str, body: Any, query: Any) -> Reply:
        store = self._store(obj)
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            return _error(400, "Invalid input JSON: name and label are required")
        if body["name"] in store.groups:
            return _error(409, f"A property group named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS")
        group = {
            "name": body["name"],
            "label": body["label"],
            "displayOrder": body.get("displayOrder", -1),
            "archived": False,
        }
        store.groups[body["name"]] = group
        return Reply(201, group)


def _detail(message: str, code: str, name: str) -> dict[str, Any]:
    return {"message": message, "code": code, "context": {"propertyName": [name]}}


def _input_error(
    details: list[dict[str, Any]], category: str = "VALIDATION_ERROR", message: str | None = None
) -> dict[str, Any]:
    if message is None:
        described = [
            {"isValid": False, "message": d["message"], "error": d["code"], "name": d["context"]["propertyName"][0]}
            for d in details
        ]
        message = "Property values were not valid: " + json.dumps(described, separators=(",", ":"))
    return {"status": "error", "category": category, "message": message, "errors": details, "context": {}}


def _type_problem(type_: Any, field_type: Any) -> str | None:
    if type_ not in FIELD_TYPES:
        return f"Invalid property type {type_!r}; expected one of {', '.join(sorted(FIELD_TYPES))}"
    if field_type not in FIELD_TYPES[type_]:
        return f"fieldType {field_type!r} is not valid for a property of type {type_!r}"
    return None


def _options(raw: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    if raw is None:
        return [], None
    if not isinstance(raw, list):
        return None, "options must be an array"
    if len(raw) > 5000:
        return None, "A property can have at most 5000 options"
    options, seen = [], set()
    for i, option in enumerate(raw):
        if not isinstance(option, dict) or not option.get("label") or option.get("value") in (None, ""):
            return None, f"Option {i} needs a label and a value"
        value = str(option["value"])
        if len(value) > 3000 or len(str(option["label"])) > 3000:
            return None, f"Option {value[:50]!r} is longer than 3000 characters"
        if ";" in value:
            return None, f"Option value {value!r} may not contain ';'"
        if value in seen:
            return None, f"Duplicate option value {value!r}"
        seen.add(value)
        options.append(
            {
                "label": str(option["label"]),
                "value": value,
                "displayOrder": option.get("displayOrder", i),
                "hidden": bool(option.get("hidden")),
                **({"description": option["description"]} if option.get("description") else {}),
            }
        )
    return options, None


def _parse_rate_limit(value: str | tuple[int, float] | None) -> tuple[int, float] | None:
    if value is None or isinstance(value, tuple):
        return value
    if value.strip().lower() in ("", "none", "off", "0"):
        return None
    requests, _, seconds = value.partition("/")
    return int(requests), float(seconds or 10)


def main(
    host: str = "127.0.0.1",
    port: int = 8010,
    token: str | None = "sandbox-token",
    rate_limit: str | tuple[int, float] | None = "190/10",
) -> None:
    """Serve the sandbox until interrupted."""
    sandbox = HubSpotSandbox(host, port, token or None, rate_limit=_parse_rate_limit(rate_limit))
    sandbox.start()
    limit = sandbox._rate_limit
    click.echo(
        f"HubSpot sandbox on {sandbox.url} — token: {'any' if not token else 'as given'}, "
        f"rate limit: {f'{limit[0]} per {limit[1]:g} s' if limit else 'none'}. Ctrl-C stops it."
    )
    sandbox.serve_forever()


@click.command("hubspot-sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8010, show_default=True, type=int)
@click.option("--token", default="sandbox-token", show_default=True, help="Bearer token to accept; '' accepts any.")
@click.option("--rate-limit", default="190/10", show_default=True, help="REQUESTS/SECONDS, or 'none'.")
def sandbox_command(host: str, port: int, token: str, rate_limit: str) -> None:
    """Run a local fake of HubSpot's CRM API (for demos, tests and benchmarks)."""
    main(host, port, token, rate_limit)


if __name__ == "__main__":
    sandbox_command()
