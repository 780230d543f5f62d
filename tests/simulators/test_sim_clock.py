"""The simulator's market clock and corporate actions: what a vendor knew on a given day, and nothing later.

Covers ``Market(as_of=...)`` / ``set_as_of``, ``SimulatorStack.set_as_of``, ``simulate --as-of`` and
``INGESTION_SIM_AS_OF``; the splits and dividends truth and its reference endpoints (compared field by field with the
vendor captures read from ``../shared/vendor`` at run time); ``adjusted=true`` by executed splits only; raw volume at a
split; continuity across year boundaries; the limited-history plan counted back from the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from fixtures.simulators import MakePolygonRest, spawn_simulate

from ingestion.config import settings
from ingestion.errors import ConfigError
from ingestion.runtime import SIM_AS_OF_ENV, runtime, sim_as_of
from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.market import DividendRecord, Market, SplitRecord
from ingestion.simulators.stack import SimulatorStack

AUTH = {"Authorization": f"Bearer {POLYGON_SIM_KEY}"}
NVDA_SPLIT = dt.date(2024, 6, 10)  # 10-for-1, announced 2024-05-22
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def get(url: str, path: str, /, auth: str = POLYGON_SIM_KEY, **params: Any) -> requests.Response:
    return requests.get(url + path, params=params, headers={"Authorization": f"Bearer {auth}"}, timeout=30)


def follow(url: str, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every result of a paged query (following next_url) and the number of pages."""
    body = get(url, path, **params).json()
    results, pages = list(body["results"]), 1
    while "next_url" in body:
        body = requests.get(body["next_url"], headers=AUTH, timeout=30).json()
        results.extend(body["results"])
        pages += 1
    return results, pages


def closes(url: str, ticker: str, start: str, end: str, adjusted: bool = True) -> dict[str, float]:
    body = get(url, f"/v2/aggs/ticker/{ticker}/range/1/day/{start}/{end}", adjusted=str(adjusted).lower()).json()
    return {
        dt.datetime.fromtimestamp(b["t"] / 1000, dt.UTC).date().isoformat(): b["c"] for b in body.get("results", [])
    }


# -- the clock on the ground truth ------------------------------------------------------------------------------------


def test_clock_hides_later_sessions_and_never_changes_earlier_values() -> None:
    clocked = Market(as_of=dt.date(2024, 6, 7))
    free = Market()
    assert clocked.as_of == dt.date(2024, 6, 7) and clocked.last_day == dt.date(2024, 6, 7)
    assert clocked.sessions()[-1] == dt.date(2024, 6, 7)
    assert clocked.sessions("2024-06-03", "2024-06-14")[-1] == dt.date(2024, 6, 7)
    assert clocked.minute_bars("NVDA", NVDA_SPLIT).empty
    assert clocked.daily_bars("NVDA", "2024-06-03", "2024-06-14")["day"].max() == dt.date(2024, 6, 7)
    lo = int(dt.datetime(2024, 6, 7, tzinfo=dt.UTC).timestamp() * 1000)
    assert clocked.minute_bars_range("NVDA", lo, lo + 7 * 86_400_000)["day"].max() == dt.date(2024, 6, 7)
    # Generation never depends on the clock: raw history before it is the same whatever the clock says.
    before = clocked.daily_bars("NVDA", "2024-01-02", "2024-06-07", adjusted=False)
    assert before.equals(free.daily_bars("NVDA", "2024-01-02", "2024-06-07", adjusted=False))
    clocked.set_as_of("2024-06-12")
    assert clocked.sessions()[-1] == dt.date(2024, 6, 12)
    assert clocked.daily_bars("NVDA", "2024-01-02", "2024-06-07", adjusted=False).equals(before)
    clocked.set_as_of(None)
    assert clocked.as_of is None and clocked.last_day == free.last_day


def test_adjusted_uses_only_splits_executed_by_the_clock() -> None:
    market = Market(as_of=dt.date(2024, 6, 7))
    raw = market.daily_bars("NVDA", "2024-05-01", "2024-06-07", adjusted=False)
    adjusted = market.daily_bars("NVDA", "2024-05-01", "2024-06-07", adjusted=True)
    # The 10:1 split is announced (2024-05-22) but not executed: nothing to adjust for yet.
    assert adjusted[["close", "volume"]].equals(raw[["close", "volume"]])
    market.set_as_of("2024-06-12")
    after = market.daily_bars("NVDA", "2024-05-01", "2024-06-12", adjusted=True)
    pre = after[after["day"] < NVDA_SPLIT]
    assert np.allclose(pre["close"].to_numpy(), raw["close"].to_numpy() / 10, atol=1e-4)
    assert (pre["volume"].to_numpy() == raw["volume"].to_numpy() * 10).all()
    # Bars from the split on are the same raw or adjusted.
    tail = after[after["day"] >= NVDA_SPLIT].reset_index(drop=True)
    raw_tail = market.daily_bars("NVDA", NVDA_SPLIT, "2024-06-12", adjusted=False)
    assert tail["close"].tolist() == raw_tail["close"].tolist()


def test_raw_volume_jumps_by_the_split_ratio_and_adjusted_volume_is_continuous() -> None:
    market = Market(as_of=dt.date(2024, 8, 30))
    raw = market.daily_bars("NVDA", "2024-04-01", "2024-08-30", adjusted=False).set_index("day")["volume"]
    adjusted = market.daily_bars("NVDA", "2024-04-01", "2024-08-30", adjusted=True).set_index("day")["volume"]
    before = [d for d in raw.index if d < NVDA_SPLIT][-40:]
    after = [d for d in raw.index if d >= NVDA_SPLIT][:40]
    raw_ratio = raw[after].median() / raw[before].median()
    adjusted_ratio = adjusted[after].median() / adjusted[before].median()
    assert 0.6 < adjusted_ratio < 1.6
    assert raw_ratio / adjusted_ratio == pytest.approx(10.0, rel=1e-6)
    assert 6.0 < raw_ratio < 16.0
    # The split session itself: no volume shock in adjusted terms (z-score against the previous 20 sessions).
    prev = adjusted[before[-20:]].to_numpy()
    assert abs((adjusted[NVDA_SPLIT] - prev.mean()) / prev.std(ddof=1)) < 4.0


SHORT_UNIVERSE = ("NVDA", "AAPL", "JPM", "SPY")  # a split, a split and dividends, dividends, an ETF


@pytest.mark.parametrize(
    "symbols", [SHORT_UNIVERSE, pytest.param(tuple(Market().symbols), marks=pytest.mark.slow, id="every-symbol")]
)
def test_no_jump_at_year_boundaries(market: Market, symbols: tuple[str, ...]) -> None:
    """Volume z-score of each year's first session against the previous 20, and its return, stay in a sane band."""
    for symbol in symbols:
        daily = market.daily_bars(symbol, "2020-01-01", min(market.last_day, dt.date(2026, 12, 31)), adjusted=True)
        volume, close, days = daily["volume"].to_numpy(), daily["close"].to_numpy(), list(daily["day"])
        firsts = [k for k in range(20, len(days)) if days[k].year != days[k - 1].year]
        assert firsts, symbol
        for k in firsts:
            prev = volume[k - 20 : k]
            z = (volume[k] - prev.mean()) / prev.std(ddof=1)
            assert -4.0 < z < 6.0, (symbol, days[k], z)
            assert abs(np.log(close[k] / close[k - 1])) < 0.15, (symbol, days[k])


# -- corporate actions truth ------------------------------------------------------------------------------------------


def test_split_and_dividend_truth_of_the_default_universe(market: Market) -> None:
    nvda = market.split_records("NVDA")
    assert [(r.execution_date, r.split_from, r.split_to, r.declared_date) for r in nvda] == [
        (dt.date(2021, 7, 20), 1, 4, dt.date(2021, 5, 21)),
        (NVDA_SPLIT, 1, 10, dt.date(2024, 5, 22)),
    ]
    assert all(isinstance(r, SplitRecord) and re.fullmatch(r"E[0-9a-f]{64}", r.id) for r in nvda)
    assert market.split_records("MSFT") == ()
    for symbol in ("AAPL", "MSFT", "JPM"):
        records = market.dividend_records(symbol)
        assert all(isinstance(r, DividendRecord) for r in records)
        in_2023 = [r for r in records if r.ex_dividend_date.year == 2023]
        assert len(in_2023) == 4, symbol  # quarterly
        for r in records:
            assert r.declaration_date is not None and r.record_date is not None and r.pay_date is not None
            assert r.declaration_date < r.ex_dividend_date <= r.record_date < r.pay_date
            assert r.ex_dividend_date.weekday() < 5 and r.declaration_date.weekday() < 5
            assert (r.currency, r.frequency, r.dividend_type) == ("USD", 4, "CD") and r.cash_amount > 0
    aapl = {r.ex_dividend_date: r.cash_amount for r in market.dividend_records("AAPL")}
    # Per share as traded on the ex-date: four times the post-split amount before AAPL's 4:1 split.
    assert aapl[dt.date(2020, 5, 8)] == pytest.approx(0.82) and aapl[dt.date(2020, 11, 9)] == pytest.approx(0.205)
    assert market.dividend_records("NVDA") == ()


def test_a_dividend_lowers_the_price_by_its_amount_on_the_ex_date() -> None:
    day = dt.date(2023, 8, 8)
    paying = Market(dividends={"MSFT": (DividendRecord("Ex", "MSFT", day, day, day, day, 25.0),)})
    plain = Market(dividends={})
    a = paying.daily_bars("MSFT", "2023-08-01", "2023-08-31", adjusted=False).set_index("day")
    b = plain.daily_bars("MSFT", "2023-08-01", "2023-08-31", adjusted=False).set_index("day")
    assert (a.loc[: dt.date(2023, 8, 7), "close"] == b.loc[: dt.date(2023, 8, 7), "close"]).all()
    ratio = a.loc[day:, "close"] / b.loc[day:, "close"]
    expected = 1 - 25.0 / b.loc[dt.date(2023, 8, 7), "close"]
    assert np.allclose(ratio.to_numpy(), expected, atol=2e-3)
    assert (a["volume"] == b["volume"]).all()


# -- reference endpoints ----------------------------------------------------------------------------------------------


def _spec_schema(vendor: Path, path: str) -> tuple[set[str], set[str]]:
    spec = json.loads((vendor / "polygon" / "openapi-rest.json").read_text())
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return set(schema["properties"]), set(schema["properties"]["results"]["items"]["properties"])


@pytest.mark.parametrize(
    ("path", "params"),
    [("/v3/reference/splits", {"ticker": "NVDA"}), ("/v3/reference/dividends", {"ticker": "JPM", "limit": 3})],
)
def test_reference_endpoints_match_the_captures_field_by_field(
    polygon_rest: Any, vendor: Path, path: str, params: dict[str, Any]
) -> None:
    capture = json.loads((vendor / "polygon" / "rest-captures" / f"{path.lstrip('/')}.json").read_text())
    body_fields, record_fields = _spec_schema(vendor, path)
    served = get(polygon_rest.url, path, **params).json()
    assert set(capture) <= set(served) <= body_fields | {"request_id"}
    assert served["status"] == capture["status"] == "OK"
    assert re.fullmatch(r"[0-9a-f]{32}", served["request_id"])
    assert served["results"]
    example = capture["results"][0]
    for record in served["results"]:
        # Every captured field, with the captured JSON type; anything more is a field of the spec (id, currency).
        for name, value in example.items():
            assert name in record, (path, name)
            assert type(record[name]) is type(value), (path, name, record[name], value)
            if isinstance(value, str) and ISO_DATE.fullmatch(value):
                assert ISO_DATE.fullmatch(record[name])
        assert set(record) - set(example) <= record_fields
        assert list(record) == sorted(record)  # the vendor's key order
    # Newest first, as the captures (no order given).
    key = "execution_date" if "splits" in path else "ex_dividend_date"
    dates = [r[key] for r in served["results"]]
    assert dates == sorted(dates, reverse=True)
    assert [r[key] for r in capture["results"]] == sorted((r[key] for r in capture["results"]), reverse=True)


def test_reference_endpoints_page_by_cursor_and_filter(polygon_rest: Any) -> None:
    url = polygon_rest.url
    everything = get(url, "/v3/reference/dividends", limit=1000, order="asc").json()
    assert "next_url" not in everything
    paged, pages = follow(url, "/v3/reference/dividends", limit=7, order="asc")
    assert paged == everything["results"] and pages == -(-len(paged) // 7)
    assert len({r["id"] for r in paged}) == len(paged)
    first = get(url, "/v3/reference/dividends", limit=7).json()
    assert "apiKey" not in first["next_url"] and "cursor=" in first["next_url"]
    window, _ = follow(
        url, "/v3/reference/dividends", ticker="MSFT", limit=2, **{"ex_dividend_date.gte": "2022-01-01"},
        **{"ex_dividend_date.lte": "2022-12-31"},
    )  # fmt: skip
    assert len(window) == 4 and {r["ticker"] for r in window} == {"MSFT"}
    splits, pages = follow(url, "/v3/reference/splits", limit=2, sort="ticker", order="asc")
    assert pages == 4 and len(splits) == 7
    assert [r["ticker"] for r in splits] == sorted(r["ticker"] for r in splits)
    since = get(url, "/v3/reference/splits", **{"execution_date.gt": "2022-07-18"}).json()["results"]
    assert [(r["ticker"], r["execution_date"]) for r in since] == [("NVDA", "2024-06-10"), ("TSLA", "2022-08-25")]
    assert get(url, "/v3/reference/splits", ticker="ZZZZ").json()["results"] == []
    bad = get(url, "/v3/reference/splits", sort="nonsense")
    assert bad.status_code == 400 and bad.json()["status"] == "ERROR"


def test_reference_endpoints_serve_only_actions_announced_by_the_clock(make_polygon_rest: MakePolygonRest) -> None:
    market = Market(as_of=dt.date(2024, 5, 21))
    sim = make_polygon_rest(over=market)
    nvda = get(sim.url, "/v3/reference/splits", ticker="NVDA").json()["results"]
    assert [r["execution_date"] for r in nvda] == ["2021-07-20"]
    market.set_as_of("2024-05-22")  # the announcement day: known, though not executed for weeks
    nvda = get(sim.url, "/v3/reference/splits", ticker="NVDA").json()["results"]
    assert [r["execution_date"] for r in nvda] == ["2024-06-10", "2021-07-20"]
    declared = [r for r in market.dividend_records("JPM") if r.declaration_date and r.declaration_date > market.start]
    target = declared[10]
    assert target.declaration_date is not None
    market.set_as_of(target.declaration_date - dt.timedelta(days=1))
    ids = {r["id"] for r in follow(sim.url, "/v3/reference/dividends", ticker="JPM", limit=1000)[0]}
    assert target.id not in ids and ids
    market.set_as_of(target.declaration_date)
    ids = {r["id"] for r in follow(sim.url, "/v3/reference/dividends", ticker="JPM", limit=1000)[0]}
    assert target.id in ids  # known on its declaration day, before its ex-date


def test_extra_records_are_served_beside_the_truth_as_they_are(make_polygon_rest: MakePolygonRest) -> None:
    truth = Market().split_records("AAPL")[0]
    duplicate = SplitRecord("E" + "0" * 64, "AAPL", truth.execution_date, 1, 4, truth.declared_date)
    zero = SplitRecord("E" + "1" * 64, "AAPL", dt.date(2023, 3, 6), 1, 0, dt.date(2023, 2, 1))
    weekend = DividendRecord("E" + "2" * 64, "AAPL", dt.date(2023, 3, 4), None, None, None, 0.23)
    market = Market(extra_split_records=[duplicate, zero], extra_dividend_records=[weekend])
    sim = make_polygon_rest(over=market)
    splits = get(sim.url, "/v3/reference/splits", ticker="AAPL").json()["results"]
    assert [(r["execution_date"], r["split_to"]) for r in splits] == [("2023-03-06", 0)] + [("2020-08-31", 4)] * 2
    dividends = get(sim.url, "/v3/reference/dividends", ticker="AAPL", **{"ex_dividend_date": "2023-03-04"}).json()
    assert dividends["results"] == [
        {
            "cash_amount": 0.23,
            "currency": "USD",
            "dividend_type": "CD",
            "ex_dividend_date": "2023-03-04",
            "frequency": 4,
            "id": weekend.id,
            "ticker": "AAPL",
        }
    ]
    # Bad records never move prices.
    window = ("AAPL", "2023-03-01", "2023-03-10")
    assert market.daily_bars(*window).equals(Market().daily_bars(*window))


# -- servers, the stack and the commands ------------------------------------------------------------------------------


def test_moving_the_clock_on_a_running_stack_changes_its_answers() -> None:
    with SimulatorStack(Market(), as_of="2024-06-07", with_uw=False) as stack:
        url = stack.env()["POLYGON_BASE_URL"]
        early = closes(url, "NVDA", "2024-06-03", "2024-06-14")
        assert list(early) == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
        grouped = get(url, "/v2/aggs/grouped/locale/us/market/stocks/2024-06-10").json()
        assert grouped["resultsCount"] == 0
        trades = get(url, "/v3/trades/NVDA", timestamp="2024-06-10").json()
        assert trades["results"] == []
        stack.set_as_of("2024-06-12")
        late = closes(url, "NVDA", "2024-06-03", "2024-06-14")
        assert list(late)[-1] == "2024-06-12"
        # The split is now executed: the vendor adjusts the earlier bars it had served as traded.
        assert late["2024-06-07"] == pytest.approx(early["2024-06-07"] / 10, abs=1e-4)
        assert closes(url, "NVDA", "2024-06-03", "2024-06-07", adjusted=False) == early
        assert get(url, "/v2/aggs/grouped/locale/us/market/stocks/2024-06-10").json()["resultsCount"] > 0


def test_free_plan_history_counts_back_from_the_clock(make_polygon_rest: MakePolygonRest) -> None:
    market = Market(as_of=dt.date(2024, 6, 7))
    sim = make_polygon_rest(keys={"free-key": "free"}, over=market)
    old = get(sim.url, "/v2/aggs/ticker/AAPL/range/1/day/2022-06-06/2022-06-10", auth="free-key")
    assert old.status_code == 403 and "timeframe" in old.json()["message"]
    recent = get(sim.url, "/v2/aggs/ticker/AAPL/range/1/day/2022-06-08/2022-06-10", auth="free-key")
    assert recent.status_code == 200 and recent.json()["resultsCount"] == 3


def test_sim_as_of_env_sets_the_clock_of_the_built_in_simulators(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str
) -> None:
    monkeypatch.delenv(SIM_AS_OF_ENV, raising=False)
    assert sim_as_of() is None
    monkeypatch.setenv(SIM_AS_OF_ENV, "2024-06-07")
    assert sim_as_of() == dt.date(2024, 6, 7)
    keyless = settings({"FEAST_DATA_DIR": str(tmp_path), "REDIS_URL": redis_url})
    with runtime(keyless, apply_repo=False, announce=False) as rt:
        assert rt.stack is not None and rt.stack.market.as_of == dt.date(2024, 6, 7)
        url = rt.settings.polygon_base_url
        assert list(closes(url, "NVDA", "2024-06-03", "2024-06-14"))[-1] == "2024-06-07"
    monkeypatch.setenv(SIM_AS_OF_ENV, "June 7th")
    with pytest.raises(ConfigError, match=SIM_AS_OF_ENV):
        sim_as_of()


def test_simulate_command_serves_the_market_as_of_its_clock() -> None:
    with spawn_simulate("--as-of", "2024-06-07") as sim:
        url = sim.env["POLYGON_BASE_URL"]
        assert list(closes(url, "NVDA", "2024-06-03", "2024-06-14"))[-1] == "2024-06-07"
        splits = get(url, "/v3/reference/splits", ticker="NVDA").json()["results"]
        assert splits[0]["execution_date"] == "2024-06-10"  # announced 2024-05-22, so known
