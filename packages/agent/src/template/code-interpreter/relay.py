"""A cell's output on its way to the client, read from the kernel however slowly the client reads.

The kernel does not wait for the service (Jupyter's IOPub drops nothing, it queues), so output
the client has not taken yet would pile up in the service: a cell printing in a loop to a slow
client took the service's memory until the sandbox's OOM killer ended it, and with it every
context. A Relay reads the cell on a thread of its own and holds at most MAX_HELD_BYTES of
stdout/stderr and displayed results for the client; past that it drops them, and the client gets
a stderr line saying how much, where it was lost. The main result, errors and the end are
always kept.
"""

import json
import threading
from collections import deque
from datetime import datetime, timezone

MAX_HELD_BYTES = 4 * 1024 * 1024
STREAMS = ("stdout", "stderr")


def _held_size(item):
    """What an item counts against MAX_HELD_BYTES: a stream's text, a displayed result's fields.
    The main result and errors count nothing: they are always kept."""
    kind = item.get("type")
    if kind in STREAMS:
        return len(item.get("text") or "")
    if kind == "result" and not item.get("is_main_result"):
        return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in item.values())
    return 0


def _notice(text):
    return {"type": "stderr", "text": text, "timestamp": datetime.now(timezone.utc).isoformat()}


def _dropped_notices(chars, results):
    """Where output was dropped: [characters of stream output, displayed results]."""
    notices = []
    if chars:
        notices.append(
            _notice(
                f"[wrenn: {chars} characters of output were not sent: "
                "the code printed faster than the client read]\n"
            )
        )
    if results:
        notices.append(
            _notice(
                f"[wrenn: {results} displayed results were not sent: "
                "the code displayed them faster than the client read]\n"
            )
        )
    return notices


class Relay:
    """Iterates `cells` (a context's execute generator) on its own thread; iterate the Relay
    for its items, None when `keepalive` seconds pass without one."""

    def __init__(self, cells, interrupt, keepalive):
        self._cells = cells
        self._interrupt = interrupt
        self._keepalive = keepalive
        # (item, its held size), and [chars, results] where output was dropped
        self._items = deque()
        self._held = 0
        self._cond = threading.Condition()
        self._done = False
        self._error = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        try:
            for item in self._cells:
                if self._abandoned:
                    # The client went away: stop its cell so the context is free for the next.
                    self._interrupt()
                    break
                if item is not None:
                    self._put(item)
        except Exception as err:  # the kernel machinery failed: the client hears it at the end
            self._error = err
        finally:
            # On this thread, after an interrupt, so the env restore runs on an idle kernel.
            self._cells.close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _put(self, item):
        size = _held_size(item)
        with self._cond:
            if size and self._held and self._held + size > MAX_HELD_BYTES:
                dropped = self._items[-1] if self._items else None
                if not isinstance(dropped, list):
                    dropped = [0, 0]
                    self._items.append(dropped)
                if item.get("type") in STREAMS:
                    dropped[0] += size
                else:
                    dropped[1] += 1
                return
            self._held += size
            self._items.append((item, size))
            self._cond.notify_all()

    def __iter__(self):
        while True:
            with self._cond:
                if not self._items and not self._done:
                    self._cond.wait(self._keepalive)
                if self._items:
                    entry = self._items.popleft()
                    if isinstance(entry, list):
                        items = _dropped_notices(*entry)
                    else:
                        item, size = entry
                        self._held -= size
                        items = [item]
                elif self._done:
                    if self._error is not None:
                        raise self._error
                    return
                else:
                    items = [None]
            yield from items

    def abandon(self):
        """Returns once the cell is over, interrupting it if it still runs (its client left)."""
        self._abandoned = True
        self._thread.join()
