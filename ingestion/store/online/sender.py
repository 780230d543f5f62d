"""Script calls streamed on one connection, so Redis runs a batch while Python encodes the next.

A bulk write (materialize, a backfill's online load) is bound by two single cores: this process encoding rows and
redis-server running the compare-and-set script. They only add up to the rate two cores allow when they overlap.
A redis-py pipeline does not overlap them: ``execute`` packs its commands, sends them and waits for every reply, so
Redis idles while the next pipeline is built (measured: 200k keys, Redis busy 2.9 s of a 4.5 s send). Sending from
the encoding thread does not either: a batch is larger than the socket's buffer, so ``sendall`` blocks until Redis
has run most of the batch before it (2.4 s of a 5 s materialize were spent there).

:class:`ScriptStream` packs a batch of ``EVALSHA`` calls in the caller's thread (in C, through hiredis when redis-py
has it) and hands it to an I/O thread, which writes it and then reads the replies of the batch before it. Both
waits release the GIL, so the caller encodes the next rows meanwhile. At most :data:`QUEUED` batches wait, which
bounds memory to a few megabytes whatever the size of the write.

Replies are whatever the script returns (counts here). A ``NOSCRIPT`` reply (the server restarted or its script
cache was flushed mid-write) reloads the script and resends the batches in flight, which is safe because every
script this store sends is a compare-and-set: a call that already ran changes nothing the second time.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

MAX_RELOADS = 3
"""Script reloads one stream tries after ``NOSCRIPT`` before it gives up (a server that keeps dropping scripts)."""
QUEUED = 2
"""Packed batches waiting for the I/O thread: one being written while the next is ready, so Redis never idles."""

_END = (b"", -1)
"""Queued after the last batch: the I/O thread collects what is owed and stops."""


class ScriptStream:
    """``EVALSHA`` batches of one Lua script on a connection of ``client``'s pool, written by an I/O thread.

    Use :meth:`send` for each batch, then :meth:`finish` (the sum of the replies) or, on an error of the caller,
    :meth:`abort`.
    """

    def __init__(self, client: Any, source: str) -> None:
        self._client = client
        self._source = source
        self._sha: str = client.script_load(source)
        self._pool = client.connection_pool
        self._conn: Any = self._pool.get_connection()
        self._queue: queue.Queue[tuple[bytes, int]] = queue.Queue(maxsize=QUEUED)
        # Per batch written and not yet answered: its bytes (to resend after NOSCRIPT) and how many replies it owes.
        self._inflight: deque[tuple[bytes, int]] = deque()
        self._total = 0
        self._reloads = 0
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._io = threading.Thread(target=self._run, name="redis-script-stream", daemon=True)
        self._io.start()

    def send(self, calls: Sequence[tuple[Sequence[bytes], Sequence[Any]]]) -> None:
        """Queue one batch of script calls, each ``(keys, args)``; raises what the I/O thread met, if anything."""
        self._raise()
        if not calls:
            return
        pack = self._conn.pack_command
        blob = b"".join(b"".join(pack("EVALSHA", self._sha, len(keys), *keys, *args)) for keys, args in calls)
        while True:  # a bounded put that notices the I/O thread's death instead of waiting forever
            try:
                self._queue.put((blob, len(calls)), timeout=0.5)
                return
            except queue.Full:
                self._raise()

    def finish(self) -> int:
        """Wait until every batch is answered, release the connection; returns the sum of the replies."""
        if self._io.is_alive():
            self._queue.put(_END)
            self._io.join()
        self._raise()
        self._release()
        return self._total

    def abort(self) -> None:
        """Stop without waiting for replies (the caller failed): the connection is dropped before it is released.

        The thread must be gone before the connection goes back to the pool: a thread still reading would take
        the replies of the pool's next user. Closing the socket wakes it from any read or write.
        """
        self._aborted.set()
        if self._conn is not None:
            self._conn.disconnect()
        if self._io.is_alive():
            # When the queue is full the thread is writing to the socket just closed: it fails and stops on its own.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_END)
            self._io.join()
        self._release()

    def _raise(self) -> None:
        if self._error is not None:
            if self._conn is not None:
                self._conn.disconnect()
            self._release()
            raise self._error

    # I/O thread ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                blob, count = self._queue.get()
                if self._aborted.is_set():
                    return
                if count < 0:
                    break
                self._write(blob)
                self._inflight.append((blob, count))
                while len(self._inflight) > 1:
                    self._collect()
            while self._inflight:
                self._collect()
        except BaseException as exc:  # handed to the caller's thread by _raise
            self._error = exc
            if self._aborted.is_set():
                return
            while not self._queue.empty():  # unblock a caller waiting to put
                self._queue.get_nowait()

    def _write(self, blob: bytes) -> None:
        self._conn.send_packed_command([blob], check_health=False)

    def _collect(self) -> None:
        """Read the oldest batch's replies; after ``NOSCRIPT``, reload the script and resend what it refused."""
        from redis.exceptions import NoScriptError

        blob, owed = self._inflight.popleft()
        error = self._read(owed)
        if error is None:
            return
        refused = [(blob, owed)]
        # Every batch written meanwhile was refused too, or ran: read them all before resending anything, so the
        # replies stay in step with the batches they answer.
        while self._inflight and isinstance(error, NoScriptError):
            later = self._inflight.popleft()
            error = self._read(later[1]) or error
            refused.append(later)
        self._reloads += 1
        if not isinstance(error, NoScriptError) or self._reloads > MAX_RELOADS:
            raise error
        # The script's digest is its source's SHA1, so the batches still carry the right one once it is loaded.
        self._client.script_load(self._source)
        for again in refused:
            self._write(again[0])
            self._inflight.append(again)

    def _read(self, owed: int) -> Exception | None:
        """Read ``owed`` replies, adding the counts; the first error reply, if any (the rest are still read)."""
        from redis.exceptions import ResponseError

        error: Exception | None = None
        for _ in range(owed):
            try:
                self._total += int(self._conn.read_response())
            except ResponseError as exc:
                error = error or exc
        return error

    def _release(self) -> None:
        if self._conn is not None:
            self._pool.release(self._conn)
            self._conn = None
