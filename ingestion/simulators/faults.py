"""Fault injection for any :class:`~ingestion.simulators.http.SimServer`, shared by every vendor simulator.

A :class:`FaultPlan` holds :class:`Fault` rules. Attached to a server (``plan.attach(server)``) it decides, per request,
whether a rule fires and what it does:

========================  =========================================================================================
kind                      effect
========================  =========================================================================================
``status``                the handler is skipped; an error status (429, 500, 502, 503, ...) is sent instead, with
                          ``Retry-After: <seconds>`` when the rule has ``retry_after``
``latency``               the request is delayed by ``latency`` seconds (through the plan's injectable sleeper),
                          then served normally
``reset``                 the connection is closed without any response
``truncate``              the real response's headers are sent with its full ``Content-Length``, then only part of
                          the body, then the connection closes
``malformed``             the body is replaced by bytes that are not valid JSON (status and headers kept)
``drift``                 the JSON body is decoded, every record passed through ``transform`` and re-encoded: a
                          missing field, a new field, a value of the wrong type (see :func:`drop_field` & co.)
========================  =========================================================================================

When a rule fires is chosen per rule, counting only the requests it applies to (its ``routes``, or all):

* ``times=N``: the next N matching requests, then the rule is spent;
* ``every=N``: every Nth matching request (the Nth, 2Nth, ...);
* ``probability=p``: each matching request with probability p, drawn from the plan's seeded RNG (same seed, same
  sequence of faults);
* none of them: every matching request while the rule is enabled.

Rules can be switched on and off (``rule.enabled``, :meth:`FaultPlan.clear`), and the plan counts every fault it
injected (:attr:`FaultPlan.injected`, by kind and by ``(route, kind)``), so a test can check that its client saw
exactly the faults the server produced.

Example (the Unusual Whales simulator uses it the same way)::

    plan = FaultPlan(seed=1).attach(server)
    plan.add(Fault.status(429, retry_after=2, routes={"aggs"}, times=3))
    plan.add(Fault.drift(drop_field("vw"), every=10))
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ingestion.simulators.http import Request, Response, Route, SimServer

FaultKind = Literal["status", "latency", "reset", "truncate", "malformed", "drift"]
PRE_HANDLER: frozenset[str] = frozenset({"status", "latency", "reset"})
"""Kinds decided before the handler runs (they replace or delay it); the others damage the handler's response."""

JsonTransform = Callable[[dict[str, Any]], dict[str, Any]]
"""A schema-drift transform applied to each record (a JSON object) of a response body."""

ErrorResponder = Callable[[int, Request], Response]
"""Builds the vendor's error body for an injected status (each vendor words its errors differently)."""

# Where vendors put their records: Polygon under "results" (a list, or one object), Unusual Whales under "data".
RECORD_KEYS: tuple[str, ...] = ("results", "data")


@dataclass
class Fault:
    """One fault rule. Build it with the class methods (:meth:`status`, :meth:`latency`, ...)."""

    kind: FaultKind
    routes: frozenset[str] | None = None
    """Route names the rule applies to; ``None`` = every route (including unmatched paths)."""
    times: int | None = None
    every: int | None = None
    probability: float | None = None
    enabled: bool = True
    status_code: int = 500
    retry_after: float | None = None
    """Seconds, sent as the ``Retry-After`` header of a ``status`` fault."""
    seconds: float = 0.0
    """Added latency of a ``latency`` fault, in seconds."""
    keep_fraction: float = 0.5
    """Share of the body a ``truncate`` fault sends before closing the connection."""
    transform: JsonTransform | None = None
    body: bytes | None = None
    """Body of a ``status`` fault; the plan's vendor error responder when ``None``."""
    matched: int = 0
    """How many requests this rule applied to so far (whether it fired or not)."""
    fired: int = 0

    # -- constructors ------------------------------------------------------------------------------------------

    @classmethod
    def status(cls, code: int, *, retry_after: float | None = None, body: bytes | None = None, **when: Any) -> Fault:
        """An error status instead of the handler's response (429 with ``retry_after`` seconds, 500, 502, 503...)."""
        return cls(kind="status", status_code=code, retry_after=retry_after, body=body, **_when(when))

    @classmethod
    def latency(cls, seconds: float, **when: Any) -> Fault:
        """Delay the request by ``seconds`` (real seconds, through the plan's sleeper) and then serve it."""
        return cls(kind="latency", seconds=seconds, **_when(when))

    @classmethod
    def reset(cls, **when: Any) -> Fault:
        """Close the connection without a response."""
        return cls(kind="reset", **_when(when))

    @classmethod
    def truncate(cls, keep_fraction: float = 0.5, **when: Any) -> Fault:
        """Send the full ``Content-Length`` header but only ``keep_fraction`` of the body, then close."""
        return cls(kind="truncate", keep_fraction=keep_fraction, **_when(when))

    @classmethod
    def malformed(cls, **when: Any) -> Fault:
        """Replace the body with invalid JSON (status and headers unchanged)."""
        return cls(kind="malformed", **_when(when))

    @classmethod
    def drift(cls, transform: JsonTransform, **when: Any) -> Fault:
        """Apply ``transform`` to every record of the JSON body (see :func:`drop_field`, :func:`add_field`...)."""
        return cls(kind="drift", transform=transform, **_when(when))


def _when(when: dict[str, Any]) -> dict[str, Any]:
    allowed = {"routes", "times", "every", "probability", "enabled"}
    unknown = set(when) - allowed
    if unknown:
        raise TypeError(f"unknown fault option(s): {sorted(unknown)}")
    out = dict(when)
    if out.get("routes") is not None:
        routes = out["routes"]
        out["routes"] = frozenset([routes] if isinstance(routes, str) else routes)
    return out


# -- schema-drift transforms ---------------------------------------------------------------------------------------


def drop_field(name: str) -> JsonTransform:
    """Drift: the record loses field ``name``."""

    def transform(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != name}

    return transform


def add_field(name: str, value: Any = "surprise") -> JsonTransform:
    """Drift: the record gains a field the client has never seen."""

    def transform(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, name: value}

    return transform


def wrong_type(name: str) -> JsonTransform:
    """Drift: field ``name`` changes JSON type (a number becomes a string, a string becomes a number...)."""

    def transform(record: dict[str, Any]) -> dict[str, Any]:
        if name not in record:
            return record
        value = record[name]
        if isinstance(value, bool) or value is None:
            changed: Any = "true" if value else 0
        elif isinstance(value, int | float):
            changed = str(value)
        elif isinstance(value, str):
            changed = 12345
        else:
            changed = str(value)
        return {**record, name: changed}

    return transform


def transform_records(payload: Any, transform: JsonTransform, record_keys: Iterable[str] = RECORD_KEYS) -> Any:
    """Apply ``transform`` to each record of a vendor body: the objects under an envelope key, or a bare list."""
    if isinstance(payload, list):
        return [transform(r) if isinstance(r, dict) else r for r in payload]
    if isinstance(payload, dict):
        for key in record_keys:
            if key in payload:
                inner = payload[key]
                if isinstance(inner, dict):
                    return {**payload, key: transform(inner)}
                return {**payload, key: transform_records(inner, transform, ())}
        return transform(payload)
    return payload


# -- the plan --------------------------------------------------------------------------------------------------------


def generic_error(status: int, request: Request) -> Response:
    """A vendor-neutral error body, used when the plan is given no vendor responder."""
    return Response.json({"error": f"simulated fault: HTTP {status}"}, status=status)


@dataclass
class FaultPlan:
    """A set of fault rules attachable to any :class:`SimServer`; thread-safe (servers handle requests in threads).

    ``seed`` drives the probabilistic rules; ``sleep`` performs added latency (inject a recorder in tests so nothing
    really sleeps); ``error_response`` words a ``status`` fault as the vendor would.
    """

    seed: int = 0
    sleep: Callable[[float], None] = time.sleep
    error_response: ErrorResponder = generic_error
    rules: list[Fault] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    """Faults injected so far, by kind (``"status"`` also counted as ``"status:<code>"``)."""
    injected_by_route: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Faults injected so far, by ``(route name, kind)``."""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def attach(self, server: SimServer) -> FaultPlan:
        """Install the plan's hooks on ``server`` (before and after its handlers). Returns the plan."""
        server.fault_hooks.append(self._before)
        server.response_hooks.append(self._after)
        return self

    def add(self, fault: Fault) -> Fault:
        """Add a rule (it applies from the next request on) and return it, so a test can switch it off later."""
        with self._lock:
            self.rules.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule (counters are kept)."""
        with self._lock:
            self.rules.clear()

    def total(self, kind: str | None = None) -> int:
        """Faults injected so far, of one kind or of all kinds."""
        with self._lock:
            if kind is not None:
                return self.injected[kind]
            return sum(v for k, v in self.injected.items() if ":" not in k)

    # -- hooks ---------------------------------------------------------------------------------------------------

    def _select(self, route: Route | None, pre: bool) -> list[Fault]:
        """The rules that fire for this request, in the order they were added. Advances each rule's counters."""
        name = route.name if route is not None else "?"
        firing: list[Fault] = []
        with self._lock:
            for rule in self.rules:
                if not rule.enabled or (rule.kind in PRE_HANDLER) != pre:
                    continue
                if rule.routes is not None and name not in rule.routes:
                    continue
                rule.matched += 1
                if rule.times is not None:
                    fire = rule.fired < rule.times
                elif rule.every is not None:
                    fire = rule.matched % rule.every == 0
                elif rule.probability is not None:
                    fire = self._rng.random() < rule.probability
                else:
                    fire = True
                if fire:
                    rule.fired += 1
                    self.injected[rule.kind] += 1
                    if rule.kind == "status":
                        self.injected[f"status:{rule.status_code}"] += 1
                    self.injected_by_route[(name, rule.kind)] += 1
                    firing.append(rule)
        return firing

    def _before(self, request: Request, route: Route | None) -> Response | None:
        for rule in self._select(route, pre=True):
            if rule.kind == "latency":
                self.sleep(rule.seconds)
            elif rule.kind == "reset":
                return Response(status=0, reset=True)
            elif rule.kind == "status":
                if rule.body is not None:
                    response = Response(status=rule.status_code, body=rule.body, headers={})
                else:
                    response = self.error_response(rule.status_code, request)
                if rule.retry_after is not None:
                    response.headers["Retry-After"] = _seconds_header(rule.retry_after)
                return response
        return None

    def _after(self, request: Request, route: Route, response: Response) -> Response:
        for rule in self._select(route, pre=False):
            if rule.kind == "truncate":
                response.truncate_to = max(0, min(len(response.body) - 1, int(len(response.body) * rule.keep_fraction)))
            elif rule.kind == "malformed":
                # Cut mid-token and append garbage: no JSON parser accepts it, whatever the original body was.
                response.body = response.body[: max(1, len(response.body) // 2)] + b'\x00{"oops'
            elif rule.kind == "drift" and rule.transform is not None:
                try:
                    payload = orjson.loads(response.body)
                except orjson.JSONDecodeError:
                    continue
                response.body = orjson.dumps(transform_records(payload, rule.transform))
        return response


def _seconds_header(seconds: float) -> str:
    # Retry-After is an integer number of seconds (RFC 9110); round up so a client never retries too early.
    whole = int(seconds)
    return str(whole if whole == seconds else whole + 1)
