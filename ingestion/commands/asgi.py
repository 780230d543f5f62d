"""The few ASGI pieces the ``serve`` wrappers share: the callable types and a whole response in one call.

Feast's feature server is a FastAPI app; the wrappers around it (:mod:`~ingestion.commands.serve_app`,
:mod:`~ingestion.commands.serve_metrics`) are plain ASGI middleware, so they need no web framework of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def respond(send: Send, status: int, body: bytes, content_type: str, *, head: bool = False) -> None:
    """Send a complete HTTP response; ``head`` sends the headers of ``body`` without it (a HEAD request)."""
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
