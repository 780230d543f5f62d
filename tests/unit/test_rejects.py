"""``ParseResult.concat``: the one way pages, days and endpoints of parsed rows are joined."""

from __future__ import annotations

import pandas as pd

from ingestion.rejects import ParseResult, Rejected


def frame(*values: int) -> pd.DataFrame:
    return pd.DataFrame({"n": pd.Series(values, dtype="int64"), "s": pd.Series([str(v) for v in values], dtype=object)})


def rejected(reason: str) -> Rejected:
    return Rejected("d", "vendor endpoint", reason, {"why": reason})


def test_rows_in_order_with_a_fresh_index_rejected_and_drift_united() -> None:
    parts = [
        ParseResult(frame(1, 2), [rejected("a")], {"x"}),
        ParseResult(frame(), [rejected("b")], {"y"}),
        ParseResult(frame(3), [], {"x", "z"}),
    ]
    joined = ParseResult.concat(parts)
    assert joined.frame["n"].tolist() == [1, 2, 3]
    assert joined.frame.index.tolist() == [0, 1, 2]
    assert [r.reason for r in joined.rejected] == ["a", "b"]
    assert joined.drift == {"x", "y", "z"}
    assert not joined.ok


def test_concat_takes_any_iterable_once() -> None:
    joined = ParseResult.concat(ParseResult(frame(n)) for n in range(3))
    assert joined.frame["n"].tolist() == [0, 1, 2] and joined.ok and joined.drift == set()


def test_all_empty_keeps_the_first_frames_columns_and_dtypes() -> None:
    first = frame().astype({"s": "string"})
    joined = ParseResult.concat([ParseResult(first, [rejected("a")]), ParseResult(pd.DataFrame())])
    assert list(joined.frame.columns) == ["n", "s"]
    assert joined.frame.dtypes.to_dict() == first.dtypes.to_dict()
    assert len(joined.frame) == 0 and [r.reason for r in joined.rejected] == ["a"]


def test_no_results_falls_back_to_empty_else_no_columns() -> None:
    schema = frame(7, 8)
    joined = ParseResult.concat([], empty=schema)
    assert list(joined.frame.columns) == ["n", "s"] and len(joined.frame) == 0
    assert joined.frame.dtypes.to_dict() == schema.dtypes.to_dict()
    bare = ParseResult.concat([])
    assert bare.frame.empty and list(bare.frame.columns) == [] and bare.rejected == [] and bare.drift == set()
