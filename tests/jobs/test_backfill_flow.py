"""``backfill flow`` end to end: the UW simulator -> the four daily datasets in Parquet -> Redis -> stock Feast.

The offline rows equal the aggregates of the simulator's ground truth (built here from the truth objects, not from
the HTTP answers), a re-run fetches and adds nothing, ``get_online_features`` serves the latest values, and a
training row at 10:00 New York on day D gets day D-1's flow aggregates, never D's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import redis
from fixtures.uw_client import MakeKit
from fixtures.uw_simulator import UW_NOW

from ingestion import calendar, publication
from ingestion.config import Settings
from ingestion.datasets import (
    CREATED_TS,
    DARK_POOL_DAILY,
    ETF_FLOW_DAILY,
    EVENT_TS,
    INSIDER_ACTIVITY,
    OPTIONS_FLOW_DAILY,
    Dataset,
)
from ingestion.jobs.backfill import Sinks
from ingestion.jobs.flow import INSIDER_HISTORY_DAYS, backfill_flow
from ingestion.jobs.runs import write_online
from ingestion.runtime import Runtime
from ingestion.simulators.faults import Fault
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.simulators.uw_truth import UWTruth
from ingestion.store.feast_repo import open_store
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.unusual_whales import aggregates
from ingestion.unusual_whales.timestamps import new_york_day_start

D = dt.date
START, END = D(2024, 2, 27), D(2024, 3, 5)  # crosses a month (two units); Mar 5 is still trading at UW_NOW
LAST_CLOSED = D(2024, 3, 4)
SYMBOLS = ["JPM", "SPY"]  # JPM has an insider filing in the range; SPY is an ETF
NOW = pd.Timestamp(UW_NOW, unit="s", tz="UTC")


def _runtime(s: Settings, url: str) -> Runtime:
    return Runtime(
        settings=replace(s, uw_base_url=url),
        polygon_key=POLYGON_SIM_KEY,
        uw_token=UW_SIM_TOKEN,
        simulated_polygon=True,
        simulated_uw=True,
    )


def _options_day_end_s(day: dt.date) -> float:
    """End of the options day (close + 15 min), the publication rule's bound of a day's flow alerts."""
    return float(publication.day_ends(OPTIONS_FLOW_DAILY, [day])[0] / 1e6)


def _expected(truth: UWTruth, symbol: str) -> dict[str, pd.DataFrame]:
    """The four datasets computed from the ground truth itself for START..LAST_CLOSED."""
    days = [d.date() for d in calendar.sessions(START, LAST_CLOSED)]
    before = calendar.previous_session(START).date()
    alerts = truth.flow_alerts_between([symbol], _options_day_end_s(before), _options_day_end_s(LAST_CLOSED))
    alert_frame = pd.DataFrame(
        {
            "id": [a.id for a in alerts],
            "symbol": symbol,
            "type": [a.type for a in alerts],
            "created_at": pd.Series(pd.to_datetime([a.created_at_us for a in alerts], unit="us", utc=True)),
            "total_premium": [float(a.total_premium) for a in alerts],
            "has_sweep": [a.has_sweep for a in alerts],
        }
    )
    volume_rows = []
    for day in days:
        v = truth.options_volume(symbol, day)
        assert v is not None
        volume_rows.append(
            {
                "symbol": symbol,
                "date": day,
                "bullish_premium": float(v["call_prem_ask"] + v["put_prem_bid"]),
                "bearish_premium": float(v["call_prem_bid"] + v["put_prem_ask"]),
                "call_volume": v["call_vol_ask"] + v["call_vol_bid"] + v["call_vol_mid"],
                "put_volume": v["put_vol_ask"] + v["put_vol_bid"] + v["put_vol_mid"],
            }
        )
    prints = [p for d in [before, *days] for p in truth.darkpool_prints(symbol, d)]
    print_frame = pd.DataFrame(
        {
            "symbol": symbol,
            "executed_at": pd.to_datetime([p.executed_at_s for p in prints], unit="s", utc=True),
            "price": [p.price for p in prints],
            "size": [p.size for p in prints],
            "premium": [p.premium for p in prints],
            "canceled": [p.canceled for p in prints],
            "volume": [p.volume for p in prints],
            "seq": [p.seq for p in prints],
        }
    )
    insiders = [
        r
        for r in truth.insider_rows(START - dt.timedelta(days=INSIDER_HISTORY_DAYS), LAST_CLOSED, group=False)
        if r.first.ticker == symbol and r.filed_at_s <= UW_NOW
    ]
    insider_frame = pd.DataFrame(
        {
            "id": [r.id for r in insiders],
            "symbol": symbol,
            # Only the filing day is published: public at the end of that New York day (the parser's rule).
            "filed_at": [new_york_day_start(r.first.filing_date + dt.timedelta(days=1)) for r in insiders],
            "amount": [r.amount for r in insiders],
            "value": [r.amount * round(r.price, 4) for r in insiders],
        }
    )
    flows = truth.etf_flows(symbol, START, LAST_CLOSED)
    etf_frame = pd.DataFrame(
        {
            "symbol": symbol,
            "date": [f.date for f in flows],
            "change": [f.change for f in flows],
            "change_prem": [f.change_prem for f in flows],
            "close": [f.close for f in flows],
            "volume": [f.volume for f in flows],
            "is_fomc": [f.is_fomc for f in flows],
        }
    )
    out = {
        OPTIONS_FLOW_DAILY.name: aggregates.options_flow_daily(
            alert_frame, pd.DataFrame(volume_rows), now=NOW, sessions=days, symbols=[symbol]
        ),
        DARK_POOL_DAILY.name: aggregates.dark_pool_daily(print_frame, now=NOW, sessions=days, symbols=[symbol]),
        INSIDER_ACTIVITY.name: aggregates.insider_activity(insider_frame, now=NOW),
        ETF_FLOW_DAILY.name: aggregates.etf_flow_daily(etf_frame, now=NOW),
    }
    for name, frame in out.items():
        # A daily row's day is its date (ETF flows are published the next morning); an insider row's, its event's.
        if "date" in frame:
            days_of = pd.Series(list(frame["date"]), index=frame.index, dtype=object)
        else:
            days_of = frame[EVENT_TS].dt.tz_convert(calendar.NEW_YORK).dt.date
        out[name] = frame[((days_of >= START) & (days_of <= LAST_CLOSED) & (frame[EVENT_TS] <= NOW)).to_numpy()]
    return out


def _comparable(frame: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    cols = [c for c in ds.column_names if c != CREATED_TS]
    return frame.loc[:, cols].sort_values(list(ds.key)).reset_index(drop=True).astype(object)


def test_flow_backfill_equals_truth_is_idempotent_and_served(
    make_uw_client: MakeKit, make_applied_repo: Callable[[], Settings], redis_client: redis.Redis
) -> None:
    kit = make_uw_client()
    rt = _runtime(make_applied_repo(), kit.sim.url)
    summary = backfill_flow(rt, SYMBOLS, START, END, workers=2, client=kit.client)
    assert summary.ok, summary.errors
    assert summary.api_calls > 0 and sum(summary.quarantined.values()) == 0
    datasets = (OPTIONS_FLOW_DAILY, DARK_POOL_DAILY, INSIDER_ACTIVITY, ETF_FLOW_DAILY)
    # The backfill also lands the raw alerts and their rolling windows (issue 21; tests/unusual_whales/test_flow_*).
    assert summary.datasets_touched == {ds.name for ds in datasets} | {"options_flow_intraday"}

    data_dir = rt.settings.data_dir
    for ds in datasets:
        stored = read_dataset(data_dir, ds)
        assert count_duplicates(stored, ds) == 0
        assert summary.rows_written[ds.name] == len(stored) > 0
        assert (stored[EVENT_TS] <= NOW).all()
        expected = pd.concat([_expected(kit.sim.truth, s)[ds.name] for s in SYMBOLS], ignore_index=True)
        pd.testing.assert_frame_equal(_comparable(stored, ds), _comparable(expected, ds), rtol=1e-12)
    flow = read_dataset(data_dir, OPTIONS_FLOW_DAILY)
    assert sorted(set(flow["date"])) == [d.date() for d in calendar.sessions(START, LAST_CLOSED)]
    assert read_dataset(data_dir, DARK_POOL_DAILY)["dp_share_of_volume"].isna().all()  # no ohlcv_daily stored

    # Re-run: coverage says done, so no request and no row.
    again = backfill_flow(rt, SYMBOLS, START, END, workers=2, client=kit.client)
    assert again.api_calls == 0 and sum(again.rows_written.values()) == 0
    for ds in datasets:
        assert count_duplicates(read_dataset(data_dir, ds), ds) == 0

    # Online: the latest values, read with stock Feast through the daily_model FeatureService.
    write_online(rt, summary)
    assert summary.online_keys[OPTIONS_FLOW_DAILY.name] == 2
    store = open_store(rt.settings, rt.redis_url)
    # Read at the simulated Unusual Whales "now" (Mar 5, 2024), so the views' ttls judge the values as of then.
    store.config.online_store.read_at = pd.Timestamp("2024-03-05 18:00", tz="UTC").to_pydatetime()
    online = store.get_online_features(
        features=store.get_feature_service("daily_model"), entity_rows=[{"symbol": s} for s in SYMBOLS]
    ).to_df()
    dark = read_dataset(data_dir, DARK_POOL_DAILY)
    for sym in SYMBOLS:
        row = online[online["symbol"] == sym].iloc[0]
        last_flow = flow[(flow["symbol"] == sym) & (flow["date"] == LAST_CLOSED)].iloc[0]
        last_dark = dark[(dark["symbol"] == sym) & (dark["date"] == LAST_CLOSED)].iloc[0]
        assert row["alert_count"] == last_flow["alert_count"] and row["call_premium"] == last_flow["call_premium"]
        assert row["dp_volume"] == last_dark["dp_volume"] and row["dp_notional"] == last_dark["dp_notional"]

    # Point in time: at 10:00 New York on day D a model sees D-1's flow aggregates, never D's.
    days = [d.date() for d in calendar.sessions(D(2024, 2, 28), END)]
    entity = pd.DataFrame(
        {
            "symbol": "JPM",
            "event_timestamp": [pd.Timestamp(f"{d} 10:00", tz=calendar.NEW_YORK).tz_convert("UTC") for d in days],
        }
    )
    hist = store.get_historical_features(
        entity_df=entity, features=["options_flow_daily:alert_count", "dark_pool_daily:dp_volume"]
    ).to_df()
    hist = hist.sort_values("event_timestamp").reset_index(drop=True)
    by_day_flow = flow[flow["symbol"] == "JPM"].set_index("date")["alert_count"]
    by_day_dark = dark[dark["symbol"] == "JPM"].set_index("date")["dp_volume"]
    for day, count, volume in zip(days, hist["alert_count"], hist["dp_volume"], strict=True):
        prev = calendar.previous_session(day).date()
        assert count == by_day_flow[prev], f"{day}: expected {prev}'s alert count"
        assert volume == by_day_dark[prev], f"{day}: expected {prev}'s dark-pool volume"


def test_flow_backfill_quarantines_bad_rows_and_resumes(
    make_uw_client: MakeKit, make_applied_repo: Callable[[], Settings]
) -> None:
    kit = make_uw_client()
    rt = _runtime(make_applied_repo(), kit.sim.url)
    kit.sim.faults.add(Fault.drift(lambda r: {**r, "price": "bad"}, routes={"darkpool-ticker"}, times=1))
    sinks = Sinks.for_settings(rt.settings)
    first = backfill_flow(rt, ["AAPL"], START, D(2024, 2, 29), workers=1, client=kit.client, sinks=sinks)
    bad = len(kit.sim.truth.darkpool_prints("AAPL", calendar.previous_session(START).date()))
    assert first.quarantined["uw_dark_pool"] == bad
    assert sinks.quarantine.counts_by_dataset() == {"uw_dark_pool": bad}
    # A wider range fetches only the missing month.
    before = sum(kit.sim.server.log.by_route.values())
    wider = backfill_flow(rt, ["AAPL"], START, END, workers=1, client=kit.client, sinks=sinks)
    assert wider.chunks_skipped == 1 and wider.rows_written[OPTIONS_FLOW_DAILY.name] == 2  # Mar 1 and Mar 4
    assert sum(kit.sim.server.log.by_route.values()) - before == wider.api_calls
