"""The progress bar of a batch job: a tqdm bar on stderr, silent when stderr is not a terminal (CI logs stay clean).

Its unit is the engine's unit of work, one symbol's session (:data:`ingestion.jobs.engine.Progress`), and its total
the work planned up front (:func:`~ingestion.jobs.engine.planned_work`), so that its rate and ETA mean the same for a
year of daily bars and a month of flow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], object]]:
    """Yield ``update(n)``, which advances a bar of ``total`` sessions; the bar is closed on exit, error or not."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=" session", file=sys.stderr, disable=not sys.stderr.isatty())
    try:
        yield bar.update
    finally:
        bar.close()
