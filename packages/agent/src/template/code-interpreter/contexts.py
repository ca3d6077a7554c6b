"""E2B code contexts: one kernel per context, E2B's output objects per cell.

Python runs in Jupyter's kernel (JupyterContext, here); JavaScript in Wrenn's Node kernel
(NodeContext, node_context.py). Both have the same public methods: describe, execute,
interrupt, stop_cell, restart, shutdown; a `lock` held while a cell runs, and a count of
`restarts`. Used by server.py (the HTTP side); only the standard library and Debian's
jupyter_client.
"""

import json
import math
import os
import queue
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

from jupyter_client import KernelManager
from node_context import NodeContext, died, lost_state
from read_counter import ReadCounter

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_STARTUP = os.path.join(HERE, "kernel_startup.py")
# A line every few seconds while a cell is quiet: a client that went away shows up as a
# failed write, and its cell is interrupted instead of blocking the context.
KEEPALIVE_SECONDS = 5
KERNEL_READY_SECONDS = 60
# How long an interrupted cell has to stop before its kernel is restarted instead (code that
# ignores SIGINT, or a call into C that never checks for it, would hold the context for ever).
INTERRUPT_SECONDS = 30

# Jupyter MIME types -> E2B result fields; the rest go to `extra`.
MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


ALIASES = {"py": "python", "python3": "python", "js": "javascript", "node": "javascript"}


def normalize_language(language):
    if not language:
        return "python"
    language = str(language).strip().lower()
    return ALIASES.get(language, language)


def finite(value):
    """JSON without NaN/Infinity (JavaScript's JSON.parse rejects them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, str) else datetime.now(timezone.utc).isoformat()


def result_of(data, is_main):
    out = {"type": "result", "is_main_result": is_main}
    extra = {}
    for mime, value in data.items():
        field = MIME_FIELDS.get(mime)
        if field:
            out[field] = value
        else:
            extra[mime] = value
    text = out.get("text")
    # A str result reads as its value, not its repr (as E2B's service does).
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        out["text"] = text[1:-1]
    if extra:
        out["extra"] = extra
    return out


class JupyterContext:
    """One Jupyter kernel; one cell runs at a time."""

    def __init__(self, language, cwd, kernel):
        self.id = str(uuid.uuid4())
        self.language = language
        self.cwd = cwd
        self.lock = threading.Lock()
        self.running = None  # msg_id of the cell the kernel is running
        self.lost_state = False  # restarted by an interrupt: the next cell says so
        self.restarts = 0
        self.stopped_by = None  # why stop_cell killed the kernel: the cell it ends says so
        self.reads = ReadCounter()
        # IOPub messages of the cell being run (`running`), put there by the context's reader.
        self.inbox = queue.Queue()
        self._reader = None
        self.manager = KernelManager(kernel_name=kernel)
        self.manager.start_kernel(cwd=cwd)
        self.client = None
        try:
            self._connect()
        except Exception:
            if self.client is not None:
                self._disconnect()
            self.manager.shutdown_kernel(now=True)
            self.reads.close()
            raise

    def describe(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    def _connect(self):
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=KERNEL_READY_SECONDS)
        stop = threading.Event()
        reader = threading.Thread(target=self._read_iopub, args=(self.client, stop), daemon=True)
        reader.start()
        self._reader = (reader, stop)
        with open(KERNEL_STARTUP, encoding="utf-8") as f:
            startup = f.read()
        self._silent(f"exec({startup!r}, {{'__name__': '_wrenn_startup'}})")
        self.reads.reset()
        self._silent(f"__import__('_wrenn').follow_reads({self.reads.path!r})")

    def _disconnect(self):
        """Stops the IOPub reader, then the client's channels (the reader uses one of them)."""
        if self._reader is not None:
            reader, stop = self._reader
            stop.set()
            reader.join()
            self._reader = None
        self.client.stop_channels()

    def _read_iopub(self, client, stop):
        """Reads IOPub always, cells followed or not: what no one follows (a thread printing
        after its cell ended) is dropped here rather than left queued in ZeroMQ for later, where
        it took the service's memory without bound. Counted as read either way, so the kernel
        never waits for output no one follows."""
        while not stop.is_set():
            try:
                msg = client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:
                # One that does not parse (the kernel runs the user's code: it can send anything)
                # is dropped; this thread must go on, or every later cell would wait for ever.
                time.sleep(0.01)
                continue
            running = self.running
            if running is not None and msg.get("parent_header", {}).get("msg_id") == running:
                self.inbox.put(msg)  # counted by the follower as it takes it
            else:
                self._count_read(msg)

    def _silent(self, code):
        """Runs code that leaves no trace: no output to anyone, no execution count."""
        for msg in self._run(code, silent=True):
            if msg["msg_type"] == "error":
                c = msg["content"]
                raise RuntimeError(f"{c.get('ename')}: {c.get('evalue')}")

    def _send(self, code, silent=False):
        """Sends a cell as KernelClient.execute does, its id made known to the IOPub reader
        before the kernel can answer it."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.client.session.msg("execute_request", content)
        while True:  # what an earlier cell left (given up, interrupted) is no one's now
            try:
                self._count_read(self.inbox.get_nowait())
            except queue.Empty:
                break
        self.running = msg["header"]["msg_id"]
        self.client.shell_channel.send(msg)
        return self.running

    def _count_read(self, msg):
        """Counts what the kernel counts as written (kernel_startup.py): a stream's characters, and
        those of a displayed result's text fields."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.reads.add(len(content.get("text", "")))
        elif kind == "display_data":
            data = content.get("data") or {}
            self.reads.add(sum(len(v) for v in data.values() if isinstance(v, str)))

    def _run(self, code, silent=False):
        """The IOPub messages of one cell until the kernel is idle again."""
        yield from self._follow(self._send(code, silent))
        self.running = None

    def _follow(self, msg_id):
        """IOPub messages of `msg_id` until idle."""
        while True:
            try:
                msg = self.inbox.get(timeout=KEEPALIVE_SECONDS)
            except queue.Empty:
                if not self.manager.is_alive():
                    yield {"msg_type": "_died", "content": {}}
                    return
                yield {"msg_type": "_keepalive", "content": {}}
                continue
            self._count_read(msg)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue  # left over from an earlier, interrupted cell
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                return
            yield msg

    def _reply_status(self, msg_id):
        """The status of the kernel's execute_reply to `msg_id` ("ok", "error", "aborted")."""
        while True:
            try:
                msg = self.client.get_shell_msg(timeout=KEEPALIVE_SECONDS)
            except queue.Empty:
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg["content"].get("status")

    def execute(self, code, env_vars):
        """E2B's output objects for one cell (keepalives as None)."""
        if self.lost_state:
            self.lost_state = False
            yield lost_state()
        if env_vars:
            self._silent(f"__import__('_wrenn').set_env({json.dumps(env_vars)!r})")
        errored = False
        try:
            msg_id = self._send(code)
            for msg in self._follow(msg_id):
                kind, content = msg["msg_type"], msg["content"]
                if kind == "_keepalive":
                    yield None
                elif kind == "_died":
                    yield from died(self.stopped_by)
                    self.restart()
                    return
                elif kind == "stream":
                    yield {
                        "type": "stdout" if content.get("name") == "stdout" else "stderr",
                        "text": content.get("text", ""),
                        "timestamp": iso(msg.get("header", {}).get("date")),
                    }
                elif kind == "execute_input":
                    yield {
                        "type": "number_of_executions",
                        "execution_count": content.get("execution_count"),
                    }
                elif kind == "execute_result":
                    yield result_of(content.get("data", {}), True)
                elif kind == "display_data":
                    yield result_of(content.get("data", {}), False)
                elif kind == "error" and not errored:
                    errored = True
                    yield {
                        "type": "error",
                        "name": content.get("ename", ""),
                        "value": content.get("evalue", ""),
                        "traceback": "\n".join(content.get("traceback", [])),
                    }
            # A cell sent while an earlier one failed is skipped by the kernel: say so.
            self.running = None
            if not errored and self._reply_status(msg_id) == "aborted":
                yield {
                    "type": "error",
                    "name": "ExecutionAborted",
                    "value": "the kernel skipped this cell after an earlier cell failed",
                    "traceback": "",
                }
        finally:
            if env_vars and self.manager.is_alive():
                self._silent("__import__('_wrenn').restore_env()")

    def interrupt(self):
        """Stops the running cell: SIGINT, and a restart if the kernel is not idle in 30 s."""
        self.manager.interrupt_kernel()
        if self.running is None:
            return
        deadline = time.monotonic() + INTERRUPT_SECONDS
        for msg in self._follow(self.running):
            if msg["msg_type"] == "_died" or time.monotonic() > deadline:
                self.restart()
                self.lost_state = True
                break
        self.running = None

    def stop_cell(self, why):
        """Ends the running cell now: its kernel is killed, and the cell's reader restarts it."""
        self.stopped_by = why
        self.manager.signal_kernel(signal.SIGKILL)

    def restart(self):
        self._disconnect()
        self.manager.restart_kernel(now=True)
        self.stopped_by = None
        self.lost_state = False
        self._connect()
        self.restarts += 1

    def shutdown(self):
        self._disconnect()
        self.manager.shutdown_kernel(now=True)
        self.reads.close()


# The context class (and Jupyter kernel) of each language.
LANGUAGES = {
    "python": lambda cwd: JupyterContext("python", cwd, kernel="python3"),
    "javascript": lambda cwd: NodeContext("javascript", cwd),
}


class Contexts:
    def __init__(self, cwd):
        self.lock = threading.Lock()
        self.by_id = {}
        # language -> id of the context `/execute` uses without a context_id.
        self.defaults = {}
        self.default_lock = threading.Lock()  # one default kernel per language, even when racing
        self.cwd = cwd

    def create(self, language, cwd=None):
        language, cwd = normalize_language(language), cwd or self.cwd
        start = LANGUAGES.get(language)
        if start is None:
            raise HttpError(
                400,
                f"language {language!r} is not available here (have: {', '.join(LANGUAGES)})",
            )
        if not os.path.isdir(cwd):
            raise HttpError(400, f"cwd {cwd!r} is not a directory")
        ctx = start(cwd)
        with self.lock:
            self.by_id[ctx.id] = ctx
        return ctx

    def get(self, context_id):
        with self.lock:
            ctx = self.by_id.get(context_id)
        if ctx is None:
            raise HttpError(404, f"context {context_id} not found")
        return ctx

    def default(self, language):
        language = normalize_language(language)
        with self.default_lock:
            with self.lock:
                ctx = self.by_id.get(self.defaults.get(language, ""))
            if ctx is None:
                ctx = self.create(language)
                with self.lock:
                    self.defaults[language] = ctx.id
            return ctx

    @staticmethod
    @contextmanager
    def _idle(ctx, why):
        """Holds ctx's lock, first stopping the cell it runs (whose client is told `why`)."""
        stopped = False
        while not ctx.lock.acquire(timeout=0.5):
            if not stopped and ctx.running is not None:
                ctx.stop_cell(why)
                stopped = True
        try:
            yield
        finally:
            ctx.lock.release()

    def restart(self, context_id):
        """Restarts a context's kernel now, even while a cell runs (that cell ends)."""
        ctx = self.get(context_id)
        restarts = ctx.restarts
        with self._idle(ctx, "the context was restarted"):
            if ctx.restarts == restarts:  # else the stopped cell's reader just did
                ctx.restart()

    def remove(self, context_id):
        ctx = self.get(context_id)
        with self.lock:
            self.by_id.pop(context_id, None)
        with self._idle(ctx, "the context was removed"):
            ctx.shutdown()

    def list(self):
        with self.lock:
            return [ctx.describe() for ctx in self.by_id.values()]

    def shutdown_all(self):
        with self.lock:
            contexts = list(self.by_id.values())
            self.by_id.clear()
        for ctx in contexts:
            try:
                ctx.shutdown()
            except Exception:
                pass
