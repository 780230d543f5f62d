"""The progress bar of a batch job: a tqdm bar on stderr, silent when stderr is not a terminal (CI logs stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], object]]:
    """Yield ``update(n)``, which advances a bar of ``total`` units; the bar is closed on exit, error or not."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="chunk", file=sys.stderr, disable=not sys.stderr.isatty())
    try:
        yield bar.update
    finally:
        bar.close()
