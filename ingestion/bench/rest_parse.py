"""REST parse to the standard bar frame, in bars/s on one core, side by side with its baselines in one run.

Pages are realistic ``/v2/aggs/ticker/{T}/range/1/minute/...`` bodies of 50,000 bars (the vendor's page limit),
written here from the simulator's minute bars (:mod:`ingestion.simulators.market`) with the vendor's key order and
4-decimal prices. Each candidate reads the same pages:

* ``ours``: :func:`ingestion.polygon.parse.parse_aggs`: validated bytes -> standard frame (window end, dtypes);
* ``ours, page with one bad row``: the same page with one string price: the fast path declines it and the per-row
  exact path quarantines that row (the cost of an unclean page);
* ``bare orjson.loads``: decoding only, no columns, no checks: the floor for any orjson-based parser;
* ``massive list_aggs rows``: what the official client does per page: ``json.loads`` then ``Agg.from_dict`` per row;
* ``massive rows -> DataFrame``: the same, plus the ``pd.DataFrame`` a user builds from the ``Agg`` objects (still
  without the window end, dtypes or validation that ours includes).

Every candidate runs on one thread. Rates are given per wall second and per CPU second of this process: on a shared
2-core machine the wall figure swings with other work, while CPU time is what one core spends on a page.

Goals (issue 4): ours >= 1M bars/s per core and >= 3x the official client.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from ingestion.bench.common import machine, peak_rss_mb, summarize
from ingestion.polygon import envelope
from ingestion.polygon.parse import parse_aggs
from ingestion.simulators.market import Market

BARS_PER_PAGE = 50_000
ENDPOINT = "/v2/aggs/ticker/{ticker}/range/1/minute"
_MARKET_END = dt.date(2021, 12, 31)


def pages(symbols: list[str], bars_per_page: int = BARS_PER_PAGE) -> list[tuple[str, bytes]]:
    """One page of ``bars_per_page`` simulated minute bars per symbol, as the vendor's JSON bytes."""
    market = Market(end=_MARKET_END)
    start_ms = 1_577_836_800_000  # 2020-01-01
    out = []
    for symbol in symbols:
        bars = market.minute_bars_range(symbol, start_ms, start_ms + 400 * 86_400_000).iloc[:bars_per_page]
        if len(bars) < bars_per_page:
            raise RuntimeError(f"simulator gave {len(bars)} bars for {symbol}, need {bars_per_page}")
        results = [
            {"v": v, "vw": round(vw, 4), "o": round(o, 4), "c": round(c, 4), "h": round(h, 4), "l": round(lo, 4),
             "t": t, "n": n}
            for v, vw, o, c, h, lo, t, n in zip(
                bars["volume"].astype(float).tolist(), bars["vwap"].tolist(), bars["open"].tolist(),
                bars["close"].tolist(), bars["high"].tolist(), bars["low"].tolist(),
                bars["window_start_ms"].astype(int).tolist(), bars["transactions"].astype(int).tolist(),
                strict=True,
            )
        ]  # fmt: skip
        body = {
            "ticker": symbol,
            "queryCount": len(results),
            "resultsCount": len(results),
            "adjusted": True,
            "results": results,
            "status": "OK",
            "request_id": f"bench-{symbol}",
            "next_url": f"https://api.polygon.io/v2/aggs/ticker/{symbol}/range/1/minute/1/2?cursor=bench",
        }
        out.append((symbol, orjson.dumps(body)))
    return out


def _ours(symbol: str, body: bytes) -> Callable[[], object]:
    return lambda: (
        parse_aggs(body, symbol=symbol, timespan="minute", multiplier=1, adjusted=True, endpoint=ENDPOINT).frame
    )


def _ours_one_bad_row(symbol: str, body: bytes) -> Callable[[], object]:
    # One row with a string price: the fast path declines the page and the exact path checks every row and
    # quarantines that one. This is what an unclean page costs.
    doc = orjson.loads(body)
    doc["results"][len(doc["results"]) // 2]["o"] = "n/a"
    return _ours(symbol, orjson.dumps(doc))


def _bare_orjson(_symbol: str, body: bytes) -> Callable[[], object]:
    return lambda: orjson.loads(body)


def _massive_rows(_symbol: str, body: bytes) -> Callable[[], object]:
    from massive.rest.models import Agg

    def run() -> object:
        decoded = json.loads(body.decode("utf-8"))  # massive.rest.base: self.json.loads(resp.data.decode("utf-8"))
        return [Agg.from_dict(row) for row in decoded["results"]]

    return run


def _massive_frame(symbol: str, body: bytes) -> Callable[[], object]:
    import pandas as pd

    to_rows = _massive_rows(symbol, body)
    return lambda: pd.DataFrame(to_rows())


def _times(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeat`` calls after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return wall, cpu


CANDIDATES: dict[str, Callable[[str, bytes], Callable[[], object]]] = {
    "ours": _ours,
    "ours, page with one bad row": _ours_one_bad_row,
    "bare orjson.loads": _bare_orjson,
    "massive list_aggs rows": _massive_rows,
    "massive rows -> DataFrame": _massive_frame,
}


def run(quick: bool) -> dict[str, Any]:
    """Bars/s of each candidate over the same pages (median page time), and ours against the baselines."""
    symbols = ["AAPL"] if quick else ["AAPL", "MSFT", "NVDA", "JPM"]
    repeat = 2 if quick else 7
    bodies = pages(symbols)
    # Sanity before timing: ours must read every bar, or its speed means nothing.
    frame = parse_aggs(bodies[0][1], symbol=symbols[0], timespan="minute", multiplier=1, adjusted=True,
                       endpoint=ENDPOINT).frame  # fmt: skip
    if len(frame) != BARS_PER_PAGE or envelope.page_info(bodies[0][1]).results_count != BARS_PER_PAGE:
        raise RuntimeError("parse_aggs did not return every bar of the benchmark page")
    wall: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    cpu: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    # Interleave candidates page by page so drift in machine load hits all of them alike.
    for symbol, body in bodies:
        for name, make in CANDIDATES.items():
            wall_s, cpu_s = _times(make(symbol, body), repeat)
            wall[name] += wall_s
            cpu[name] += cpu_s
    table = []
    rates: dict[str, float] = {}
    for name in CANDIDATES:
        w, c = summarize(wall[name]), summarize(cpu[name])
        rates[name] = BARS_PER_PAGE / (c["median_ms"] / 1000.0)
        table.append({"variant": name, "bars_per_cpu_s": rates[name],
                      "bars_per_wall_s": BARS_PER_PAGE / (w["median_ms"] / 1000.0),
                      "cpu_ms_per_page": c["median_ms"], "wall_ms_per_page": w["median_ms"],
                      "wall_p99_ms_per_page": w["p99_ms"]})  # fmt: skip
    # Candidates interleave in this one process, so its peak RSS is shared by the rows.
    rss = peak_rss_mb()
    for row in table:
        row["peak_rss_mb"] = rss
    ours = rates["ours"]
    return {
        "bars_per_page": BARS_PER_PAGE,
        "pages": len(bodies),
        "page_mb": round(sum(len(b) for _, b in bodies) / len(bodies) / 1e6, 2),
        "rows": table,
        "ratios": {
            "ours / massive list_aggs rows": ours / rates["massive list_aggs rows"],
            "ours / massive rows -> DataFrame": ours / rates["massive rows -> DataFrame"],
            "ours / bare orjson.loads": ours / rates["bare orjson.loads"],
            "ours / ours on a page with one bad row": ours / rates["ours, page with one bad row"],
        },
        "goals": {
            "ours >= 1M bars/s per core": ours >= 1_000_000,
            "ours >= 3x massive list_aggs rows": ours / rates["massive list_aggs rows"] >= 3.0,
        },
        "rates": "per CPU second (median page); wall-clock figures are in rows",
        "load_average_1m": os.getloadavg()[0],
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
