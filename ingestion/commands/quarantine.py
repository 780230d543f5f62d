"""``quarantine list|replay``: inspect the rows that failed validation, and land the ones today's checks accept.

``list`` groups quarantined rows by dataset, source and reason, with counts (rows a replay landed are hidden unless
``--all``). ``replay --dataset NAME`` re-validates that dataset's quarantined rows (see :mod:`ingestion.jobs.replay`
for what can be replayed and why the rest cannot).
"""

from __future__ import annotations

import argparse
import sys

from ingestion.jobs.args import whole_number

HELP = "list quarantined rows by dataset, source and reason, or replay them through today's checks"

_GROUP = ["dataset", "source", "reason", "replayed"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("list", help="quarantined rows grouped by dataset, source and reason, with counts")
    show.add_argument("--dataset", default=None, help="only rows meant for this dataset (default: all)")
    show.add_argument("--reason", default=None, help="only rows whose reason contains this text (default: any)")
    show.add_argument(
        "--limit", type=whole_number("groups"), default=50, help="show at most this many groups (default 50)"
    )
    show.add_argument("--all", action="store_true", help="include rows a replay has landed")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    again = actions.add_parser("replay", help="re-validate a dataset's quarantined rows and land the ones that pass")
    again.add_argument("--dataset", required=True, help="dataset to replay (ohlcv_daily or ohlcv_minute)")
    again.add_argument("--reason", default=None, help="only rows whose reason contains this text (default: any)")


def run(args: argparse.Namespace) -> int:
    return _list(args) if args.action == "list" else _replay(args)


def _list(args: argparse.Namespace) -> int:
    import orjson

    from ingestion.config import settings
    from ingestion.store.quarantine import Quarantine

    rows = Quarantine(settings().offline_root).rows(dataset=args.dataset, reason=args.reason, include_replayed=args.all)
    groups = (
        rows.groupby(_GROUP, sort=False).agg(count=("payload", "size"), last=("event_timestamp", "max")).reset_index()
        if len(rows)
        else rows.reindex(columns=[*_GROUP, "count", "last"])
    )
    groups = groups.sort_values(["count", "dataset", "reason"], ascending=[False, True, True], kind="stable")
    shown = groups.head(args.limit)
    if args.json:
        records = [
            {
                **{k: str(row[k]) for k in ("dataset", "source", "reason")},
                "replayed": bool(row["replayed"]),
                "count": int(row["count"]),
                "last_quarantined": row["last"].isoformat(),
            }
            for _, row in shown.iterrows()
        ]
        doc = {"groups": records, "rows": int(groups["count"].sum()), "groups_total": len(groups)}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if groups.empty:
        print("no quarantined rows" + ("" if args.all else " (rows a replay landed are hidden: --all shows them)"))
        return 0
    header = f"{'dataset':<20} {'source':<30} {'rows':>6}  {'status':<11}  reason"
    print(header)
    print("-" * len(header))
    for _, row in shown.iterrows():
        status = "replayed" if row["replayed"] else "quarantined"
        print(f"{row['dataset']:<20} {row['source']:<30} {int(row['count']):>6}  {status:<11}  {row['reason']}")
    more = len(groups) - len(shown)
    print(
        f"{int(groups['count'].sum())} rows in {len(groups)} groups"
        + (f" ({more} more: raise --limit)" if more else "")
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from ingestion.config import settings
    from ingestion.errors import ConfigError
    from ingestion.jobs.replay import not_replayable, replay

    why = not_replayable(args.dataset)
    if why is not None:
        raise ConfigError(why)
    result = replay(settings().offline_root, args.dataset, reason=args.reason)
    print(result.line())
    if result.landed:
        print("landed offline only: run `python -m ingestion materialize` to bring the online store up to date")
    return 0
