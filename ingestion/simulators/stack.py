"""All vendor simulators at once: Polygon REST, Polygon WebSocket and Unusual Whales REST.

``SimulatorStack`` starts them on loopback and exposes the URLs the clients read from the environment
(``POLYGON_BASE_URL``, ``POLYGON_WS_URL``: the stocks cluster URL, ``UW_BASE_URL``). ``with_uw=False`` leaves the
Unusual Whales simulator out (a Polygon-only test). ``as_of`` is the market's clock (see
:class:`~ingestion.simulators.market.Market`); :meth:`SimulatorStack.set_as_of` moves it for every server at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from ingestion.simulators.http import SimClock
from ingestion.simulators.market import Market
from ingestion.simulators.polygon_rest import Plan, PolygonRestServer, polygon_rest_server
from ingestion.simulators.polygon_ws import PolygonWsServer, Replay, WsFaults, polygon_ws_server
from ingestion.simulators.unusual_whales import UWPlan, UWServer, uw_server


class SimulatorStack:
    """Start every simulator over one market and one clock; a context manager (or ``start()`` / ``stop()``).

    Ports of 0 pick free ports. ``polygon_keys`` maps keys to plans (see :func:`polygon_rest_server`); the WebSocket
    accepts the same keys. ``record_ws=False`` turns off the WebSocket's ground-truth log (long-running processes).
    ``as_of`` sets the clock of the (given or new) market: a shared market's clock moves for everyone using it.
    ``universe_size`` lists that many tickers in the new market, synthetic daily-only ones after the real ones
    (:mod:`ingestion.simulators.universe`).
    """

    def __init__(
        self,
        market: Market | None = None,
        *,
        seed: int = 7,
        clock: SimClock | None = None,
        polygon_port: int = 0,
        ws_port: int = 0,
        uw_port: int = 0,
        polygon_keys: Mapping[str, Plan | str] | None = None,
        replay: Replay | None = None,
        ws_faults: WsFaults | None = None,
        with_uw: bool = True,
        record_ws: bool = True,
        uw_tokens: Mapping[str, UWPlan] | Iterable[str] | None = None,
        as_of: dt.date | str | None = None,
        universe_size: int | None = None,
    ) -> None:
        if market is not None and universe_size is not None:
            raise ValueError("universe_size builds a new market: give it to Market(...) when passing a market")
        self.market = market or Market(seed=seed, universe_size=universe_size)
        if as_of is not None:
            self.market.set_as_of(as_of)
        self.clock = clock or SimClock()
        self.polygon_rest: PolygonRestServer = polygon_rest_server(
            self.market, keys=polygon_keys, clock=self.clock, port=polygon_port
        )
        self.polygon_ws: PolygonWsServer = polygon_ws_server(
            self.market,
            keys=set(self.polygon_rest.keys),
            replay=replay,
            faults=ws_faults,
            port=ws_port,
            record=record_ws,
        )
        self.uw: UWServer | None = (
            uw_server(self.market, tokens=uw_tokens, clock=self.clock, port=uw_port) if with_uw else None
        )

    def set_as_of(self, day: dt.date | str | None) -> None:
        """Move the market clock of every server (they share one market); None removes it."""
        self.market.set_as_of(day)

    def start(self) -> SimulatorStack:
        started: list[Any] = []
        try:
            for server in (self.polygon_rest, self.polygon_ws, self.uw):
                if server is not None:
                    server.start()
                    started.append(server)
        except BaseException:
            for server in reversed(started):
                server.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.uw, self.polygon_ws, self.polygon_rest):
            if server is not None:
                server.stop()

    def __enter__(self) -> SimulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment a client needs to talk to the stack (``UW_BASE_URL`` unless built with ``with_uw=False``)."""
        env = {"POLYGON_BASE_URL": self.polygon_rest.url, "POLYGON_WS_URL": self.polygon_ws.url}
        if self.uw is not None:
            env["UW_BASE_URL"] = self.uw.url
        return env
