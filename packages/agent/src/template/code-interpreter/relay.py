"""A cell's output on its way to the client, read from the kernel however slowly the client reads.

The kernel does not wait for the service (Jupyter's IOPub drops nothing, it queues), so output
the client has not taken yet would pile up in the service: a cell printing in a loop to a slow
client took the service's memory until the sandbox's OOM killer ended it, and with it every
context. A Relay reads the cell on a thread of its own and holds at most MAX_HELD_BYTES of
stdout/stderr for the client; past that it drops stream output, and the client gets a stderr
line saying how much, where it was lost. Results, errors and the end are always kept.
"""

import threading
from collections import deque
from datetime import datetime, timezone

MAX_HELD_BYTES = 4 * 1024 * 1024
STREAMS = ("stdout", "stderr")


def _dropped_notice(count):
    text = (
        f"[wrenn: {count} characters of output were not sent: "
        "the code printed faster than the client read]\n"
    )
    return {"type": "stderr", "text": text, "timestamp": datetime.now(timezone.utc).isoformat()}


class Relay:
    """Iterates `cells` (a context's execute generator) on its own thread; iterate the Relay
    for its items, None when `keepalive` seconds pass without one."""

    def __init__(self, cells, interrupt, keepalive):
        self._cells = cells
        self._interrupt = interrupt
        self._keepalive = keepalive
        self._items = deque()  # items, and [count] where stream output was dropped
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
        size = len(item.get("text") or "") if item.get("type") in STREAMS else 0
        with self._cond:
            if size and self._held and self._held + size > MAX_HELD_BYTES:
                last = self._items[-1] if self._items else None
                if isinstance(last, list):
                    last[0] += size
                else:
                    self._items.append([size])
                return
            self._held += size
            self._items.append(item)
            self._cond.notify_all()

    def __iter__(self):
        while True:
            with self._cond:
                if not self._items and not self._done:
                    self._cond.wait(self._keepalive)
                if self._items:
                    item = self._items.popleft()
                    if isinstance(item, list):
                        item = _dropped_notice(item[0])
                    elif item.get("type") in STREAMS:
                        self._held -= len(item.get("text") or "")
                elif self._done:
                    if self._error is not None:
                        raise self._error
                    return
                else:
                    item = None
            yield item

    def abandon(self):
        """Returns once the cell is over, interrupting it if it still runs (its client left)."""
        self._abandoned = True
        self._thread.join()
