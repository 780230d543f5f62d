"""The one paging loop of every vendor client: fetch a page, ask where the next one is, stop by the same rules.

Vendors page in different ways (Polygon follows an opaque ``next_url``; Unusual Whales steps an ``older_than``
timestamp back through a newest-first window, or counts ``page`` numbers), but the loop around them is the same,
so it is written once here. A client supplies two functions:

* ``fetch(cursor) -> page``: one request for the page at ``cursor`` (the first page at ``start``);
* ``next_cursor(cursor, page) -> cursor | None``: where the following page is, or None when this was the last.

and :func:`paginate` yields the pages in order. It is bounded on purpose: a vendor (or a cached page) whose cursor
points back to a page already read would otherwise loop forever without a single network error, and so would a
cursor chain that never ends. Both raise :class:`PagingError` naming the vendor and endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Final, TypeVar

from ingestion.errors import SchemaError
from ingestion.http.redaction import redact

DEFAULT_MAX_PAGES: Final = 10_000
"""Pages one :func:`paginate` call may read before it calls the chain endless (millions of rows at vendor limits)."""

C = TypeVar("C", bound=Hashable | None)
P = TypeVar("P")


class PagingError(SchemaError):
    """A vendor's paging went wrong: a cursor came back that was already read, or the chain did not end."""


def paginate(
    fetch: Callable[[C], P],
    next_cursor: Callable[[C, P], C | None],
    start: C,
    *,
    take: int | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
    vendor: str | None = None,
    endpoint: str | None = None,
) -> Iterator[P]:
    """Yield ``fetch(start)``, then the page at each cursor ``next_cursor`` names, until it names None.

    Args:
        fetch: reads the page at a cursor.
        next_cursor: the cursor of the page after ``page`` (read at ``cursor``), or None to stop. It runs after the
            consumer has handled ``page``, so a consumer that stops iterating sends no further request.
        start: the first page's cursor (None is fine: e.g. "no ``older_than`` yet").
        take: read at most this many pages and stop quietly (the caller wants only the newest page, say).
        max_pages: the safety bound: a chain that still has a next page after this many raises.
        vendor, endpoint: named in the error.

    Raises:
        PagingError: ``next_cursor`` named a cursor already read (a self- or back-pointing ``next_url``, a timestamp
            that did not move), or the chain went on past ``max_pages``.
    """
    seen: set[C] = {start}
    cursor = start
    pages = 0
    while take is None or pages < take:
        page = fetch(cursor)
        yield page
        pages += 1
        if take is not None and pages >= take:
            return
        following = next_cursor(cursor, page)
        if following is None:
            return
        if following in seen:
            raise PagingError(
                f"page {pages} points back to a page already read (cursor {_show(following)}); stopped paging",
                vendor=vendor,
                endpoint=endpoint,
            )
        if pages >= max_pages:
            raise PagingError(
                f"still paging after {max_pages} pages (next cursor {_show(following)}); raise max_pages if the "
                "range is really that long",
                vendor=vendor,
                endpoint=endpoint,
            )
        seen.add(following)
        cursor = following


def _show(cursor: object) -> str:
    # A next_url is a URL: masked like any other, in case a vendor ever echoes a credential into it.
    text = redact(repr(cursor))
    return text if len(text) <= 160 else text[:157] + "..."
