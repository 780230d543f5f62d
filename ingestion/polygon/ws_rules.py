"""What a valid Polygon WebSocket event is: one table of field rules per event type, and the checks built from it.

Two readers judge the stream's events and must agree: the exact parser
(:func:`ingestion.polygon.ws_events.parse_ws_frame`), which also owes the reason an event fails, and the client's
hot path (:class:`ingestion.polygon.websocket.PolygonWebSocketClient`), which needs a yes or no per tick within a few
hundred nanoseconds. So each field's rule is written once, here, as a Python boolean expression over the value, and
:class:`EventRules` builds both checks from the same expressions: ``accepts`` (every rule of the event in one
compiled function: no call per field, dict subscripts rather than ``get`` calls) and ``problem`` (the rules one by
one, for the reason). A rule changed here changes both readers at once.

``type(v) is int`` rather than ``isinstance``: booleans are ints to Python, and ``True`` is never a size, a time or
an exchange. orjson yields neither NaN nor infinity; the bound below 1e300 keeps absurd magnitudes out (and an
infinity, should a caller build the event by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AGGREGATE",
    "BOOL",
    "EPOCH_MS",
    "INT",
    "INT_LIST",
    "NON_NEGATIVE",
    "NUMBER",
    "QUOTE",
    "STR",
    "SYMBOL",
    "TAPE",
    "TRADE",
    "EventRules",
    "Field",
    "Rule",
    "Split",
    "split_ticks",
]

_MAX = 1e300  # below float inf: a price or size this large is a corrupt value, not a market

Check = Callable[[Mapping[str, Any]], bool]


def _function(name: str, params: str, body: list[str]) -> Callable[..., Any]:
    """Compile ``def name(params): body``. The source is built from this module's constants, never from input."""
    source = "\n".join([f"def {name}({params}):", *(f"    {line}" for line in body)])
    namespace: dict[str, Any] = {"_MAX": _MAX}
    exec(compile(source, f"<ws_rules {name}>", "exec"), namespace)  # noqa: S102 - see the docstring
    fn: Callable[..., Any] = namespace[name]
    return fn


class Rule:
    """What one field's value must be.

    ``test`` is a Python expression over ``{v}`` (the value; ``None`` when absent) and must be false for ``None``;
    ``reason`` formats the refusal with ``{name}`` and ``{value}``.
    """

    __slots__ = ("holds", "reason", "test")

    def __init__(self, test: str, reason: str) -> None:
        self.test = test
        self.reason = reason
        self.holds: Callable[[Any], bool] = _function("holds", "v", [f"return {test.format(v='v')}"])

    def __repr__(self) -> str:
        return f"Rule({self.test!r})"


SYMBOL = Rule('type({v}) is str and {v} != ""', "{name} is not a non-empty string")
NON_NEGATIVE = Rule(
    "(type({v}) is float or type({v}) is int) and 0 <= {v} < _MAX",
    "{name} is {value!r:.30}, expected a non-negative finite number",
)
NUMBER = Rule("type({v}) is float or type({v}) is int", "{name} is {value!r:.30}, expected a number")
EPOCH_MS = Rule("type({v}) is int and {v} > 0", "{name} is {value!r:.30}, expected epoch milliseconds")
INT = Rule("type({v}) is int", "{name} is {value!r:.30}, expected int")
STR = Rule("type({v}) is str", "{name} is {value!r:.30}, expected str")
BOOL = Rule("type({v}) is bool", "{name} is {value!r:.30}, expected bool")
TAPE = Rule("type({v}) is int and 1 <= {v} <= 3", "{name} is {value!r:.30}, expected a tape: 1, 2 or 3")
# A list comprehension: the cheapest form for the one- to three-element lists the feed sends.
INT_LIST = Rule(
    "type({v}) is list and not [c for c in {v} if type(c) is not int]",
    "{name} is {value!r:.30}, expected a list of integers",
)


@dataclass(frozen=True)
class Field:
    """A field of an event: its name, its rule, and whether it must be present (an optional field may be null)."""

    name: str
    rule: Rule
    required: bool = True


class EventRules:
    """The fields of one event type, and the two checks built from their rules (see the module docstring)."""

    def __init__(self, ev: str, fields: tuple[Field, ...]) -> None:
        self.ev = ev
        self.fields = fields
        bind, holds = self._source(on_missing=["return False"])
        self.accepts: Check = _function(f"accepts_{ev}", "e", [*bind, f"return {holds}"])

    def _source(self, on_missing: list[str]) -> tuple[list[str], str]:
        """Source lines that bind the fields of an event ``e`` (running ``on_missing`` when a required field is
        absent), and the expression that is true when every field's rule holds."""
        required = [(f"v{k}", f) for k, f in enumerate(self.fields) if f.required]
        optional = [(f"v{k}", f) for k, f in enumerate(self.fields) if not f.required]
        bind = ["try:", *(f"    {var} = e[{f.name!r}]" for var, f in required), "except KeyError:"]
        bind += [f"    {line}" for line in on_missing]
        # `in` and a subscript, not e.get: a method call per optional field costs more than the test itself.
        bind += [f"{var} = e[{f.name!r}] if {f.name!r} in e else None" for var, f in optional]
        terms = [f"({f.rule.test.format(v=var)})" for var, f in required]
        terms += [f"({var} is None or {f.rule.test.format(v=var)})" for var, f in optional]
        return bind, " and ".join(terms) or "True"

    def problem(self, e: Mapping[str, Any]) -> str | None:
        """None when ``e`` passes every rule; else the reason: a missing required field first, then the first
        field (in table order) whose value fails its rule."""
        if self.accepts(e):
            return None
        for f in self.fields:
            if f.required and f.name not in e:
                return f"missing field {f.name!r}"
        for f in self.fields:
            value = e.get(f.name)
            if (f.required or value is not None) and not f.rule.holds(value):
                return f.rule.reason.format(name=f.name, value=value)
        raise AssertionError(f"{self.ev}: accepts() is the conjunction of the field rules, yet none failed")


TRADE = EventRules(
    "T",
    (
        Field("sym", SYMBOL),
        Field("p", NON_NEGATIVE),
        Field("s", NON_NEGATIVE),
        Field("t", EPOCH_MS),
        Field("x", INT),
        Field("i", STR, required=False),  # absent on options trades
        Field("z", TAPE, required=False),
        Field("c", INT_LIST, required=False),
        Field("q", INT, required=False),
    ),
)
"""A trade ``T``: symbol, price, size (shares; fractional sizes exist), SIP time (ms), exchange; trade id, tape,
conditions and sequence number when sent. Other fields (``trfi``, ``trft``, ``ds``) are carried, not checked."""

QUOTE = EventRules(
    "Q",
    (
        Field("sym", SYMBOL),
        Field("bp", NON_NEGATIVE),
        Field("bs", NON_NEGATIVE),
        Field("ap", NON_NEGATIVE),
        Field("as", NON_NEGATIVE),
        Field("t", EPOCH_MS),
        Field("bx", INT, required=False),
        Field("ax", INT, required=False),
        Field("q", INT, required=False),
        Field("z", TAPE, required=False),
    ),
)
"""A quote ``Q``: bid/ask price and size (round lots), SIP time (ms); exchanges, sequence and tape when sent."""

AGGREGATE = EventRules(
    "A",
    (
        Field("sym", SYMBOL),
        Field("o", NON_NEGATIVE),
        Field("h", NON_NEGATIVE),
        Field("l", NON_NEGATIVE),
        Field("c", NON_NEGATIVE),
        Field("s", EPOCH_MS),
        Field("e", EPOCH_MS),
        Field("v", NUMBER, required=False),
        Field("vw", NUMBER, required=False),
        Field("av", NUMBER, required=False),
        Field("op", NUMBER, required=False),
        Field("a", NUMBER, required=False),
        Field("otc", BOOL, required=False),
    ),
)
"""A second (``A``) or minute (``AM``) aggregate, field by field; the checks across fields (high/low bound open and
close, end not before start, volume not negative) are the parser's."""


Split = Callable[[list[Any]], tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]]


def _compile_split(trade: EventRules, quote: EventRules) -> Split:
    """A function from a decoded frame to ``(trades, quotes, rest)``: the events of each type that pass its rules,
    and every other item in frame order. One loop with the rules inlined: the hot path pays no call per tick."""
    body = ["trades = []", "quotes = []", "rest = []", "for e in events:"]
    body += ["    ev = e.get('ev') if type(e) is dict else None"]
    for keyword, rules, kept in (("if", trade, "trades"), ("elif", quote, "quotes")):
        bind, holds = rules._source(on_missing=["rest.append(e)", "continue"])
        body += [f"    {keyword} ev == {rules.ev!r}:", *(f"        {line}" for line in bind)]
        body += [f"        if {holds}:", f"            {kept}.append(e)", "            continue"]
    body += ["    rest.append(e)", "return trades, quotes, rest"]
    split: Split = _function("split_ticks", "events", body)
    return split


split_ticks = _compile_split(TRADE, QUOTE)
"""``split_ticks(events) -> (trades, quotes, rest)``: the trades and quotes of a decoded frame that pass
:data:`TRADE` and :data:`QUOTE` (exactly those ``accepts`` takes), and everything else (statuses, aggregates,
refused ticks, non-objects) in frame order, for the exact parser to judge."""
