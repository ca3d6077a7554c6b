"""A JavaScript code context: one Node process running kernel.cjs.

It has JupyterContext's public methods (contexts.py picks the class by language). Cells go to
the kernel as JSON lines on one pipe; E2B's output objects come back on another, tagged with
their cell. What the kernel's fds 1 and 2 carry (subprocesses) counts for the running cell.
"""

import codecs
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone

KERNEL_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel.cjs")
KEEPALIVE_SECONDS = 5
READY_SECONDS = 30
# SIGINT stops a busy cell or gives up an awaiting one; code busy in a callback ignores it,
# and after this long the kernel is restarted instead.
INTERRUPT_SECONDS = 5
# Messages held for the running cell's reader; past that the kernel's (synchronous) writes wait.
QUEUED_MAX = 64
STREAMS = ("stdout", "stderr")


def died(stopped_by=None):
    """What a cell says when its kernel exits under it: crashed, or stopped (`stopped_by`)."""
    error = (
        {"name": "CellStopped", "value": f"the cell was stopped: {stopped_by}"}
        if stopped_by
        else {
            "name": "KernelDied",
            "value": "the kernel exited while running the code; the context restarts",
        }
    )
    return [{"type": "error", **error, "traceback": ""}, {"type": "unexpected_end_of_execution"}]


def now():
    return datetime.now(timezone.utc).isoformat()


def lost_state():
    """What the next cell says after an interrupt had to restart its kernel."""
    text = "the context's kernel was restarted after an interrupt; its state is gone\n"
    return {"type": "stderr", "text": text, "timestamp": now()}


def read_messages(stream, deliver):
    with stream:
        for line in stream:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            # The kernel runs the user's code, which can write anything here: only objects count.
            if isinstance(msg, dict):
                deliver(msg)
    deliver({"type": "_died"})


def read_raw(name, stream, deliver):
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with stream:
        while chunk := stream.read1(65536):
            text = decoder.decode(chunk)
            if text:
                deliver({"cell": None, "type": name, "text": text, "timestamp": now()})


class NodeContext:
    """One Node kernel; one cell runs at a time."""

    def __init__(self, language, cwd):
        self.id = str(uuid.uuid4())
        self.language = language
        self.cwd = cwd
        self.lock = threading.Lock()
        self.cell = 0  # ids of cells sent; they keep growing across restarts
        self.running = None  # id of the cell the kernel is running
        self.starting = False  # all the kernel says goes to _start until it is ready
        self.lost_state = False  # restarted by an interrupt: the next cell says so
        self.restarts = 0
        self.stopped_by = None  # why stop_cell killed the kernel: the cell it ends says so
        self._start()

    def describe(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    def _start(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            raise RuntimeError("node is not installed")
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [node, KERNEL_JS, str(cmd_r), str(out_w)],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(cmd_r, out_w),
                start_new_session=True,  # its own group: shutdown takes its subprocesses too
            )
        except BaseException:
            os.close(cmd_w)
            os.close(out_r)
            raise
        finally:
            os.close(cmd_r)
            os.close(out_w)
        self.commands = os.fdopen(cmd_w, "w", encoding="utf-8")
        # A queue per process: a dead kernel's readers cannot reach its successor's cells.
        self.queue = queue.Queue(QUEUED_MAX)
        self.starting = True
        deliver = self._deliverer(self.queue)
        readers = [
            (read_messages, os.fdopen(out_r, "rb")),
            (lambda s, d: read_raw("stdout", s, d), self.process.stdout),
            (lambda s, d: read_raw("stderr", s, d), self.process.stderr),
        ]
        for target, stream in readers:
            threading.Thread(target=target, args=(stream, deliver), daemon=True).start()

        deadline = time.monotonic() + READY_SECONDS
        said = []
        try:
            while True:
                try:
                    msg = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    self._kill()
                    raise RuntimeError("the JavaScript kernel did not start in time") from None
                if msg.get("type") == "ready":
                    return
                if msg.get("type") == "_died":
                    self._kill()
                    raise RuntimeError(f"the JavaScript kernel exited: {''.join(said).strip()}")
                said.append(msg.get("text", ""))
        finally:
            self.starting = False

    def _deliverer(self, messages):
        """Puts the kernel's messages on `messages` for whoever follows the running cell. Output
        no cell follows (a timer printing after its cell ended, or between cells) is dropped:
        queued for no one it took the service's memory without bound. A full queue holds the
        readers, and with them the kernel's writes, until the cell's reader catches up."""

        def deliver(msg):
            while messages is self.queue:  # a dead kernel's queue is read by no one
                if msg.get("type") in STREAMS and not self.starting:
                    running = self.running
                    if running is None or msg.get("cell") not in (running, None):
                        return
                try:
                    messages.put(msg, timeout=0.5)
                    return
                except queue.Full:
                    continue  # looked at again: its cell may have ended meanwhile

        return deliver

    def _kill(self):
        try:
            self.commands.close()
        except OSError:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def _next(self, timeout):
        """The kernel's next message, or None after `timeout` quiet seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            # Output pipes a subprocess still holds open hide the kernel's death: ask.
            return {"type": "_died"} if self.process.poll() is not None else None

    def execute(self, code, env_vars):
        """E2B's output objects for one cell (keepalives as None)."""
        if self.lost_state:
            self.lost_state = False
            yield lost_state()
        self.cell += 1
        cell = self.running = self.cell
        try:
            self.commands.write(json.dumps({"id": cell, "code": code, "env": env_vars}) + "\n")
            self.commands.flush()
        except OSError:
            pass  # the kernel is gone: its reader says so next
        while True:
            msg = self._next(KEEPALIVE_SECONDS)
            if msg is None:
                yield None
                continue
            kind = msg.get("type")
            if kind == "_died":
                self.running = None
                yield from died(self.stopped_by)
                self.restart()
                return
            if msg.get("cell") not in (cell, None):
                continue  # printed late by an earlier, given-up cell
            if kind == "done":
                self.running = None
                return
            msg.pop("cell", None)
            yield msg

    def interrupt(self):
        """Stops the running cell (SIGINT; a restart if that does not end it in 5 s)."""
        cell = self.running
        if cell is None:
            return
        try:
            os.kill(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + INTERRUPT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            msg = self._next(left)
            if msg is None or msg.get("type") == "_died":
                break
            if msg.get("cell") == cell and msg.get("type") == "done":
                self.running = None
                return
        self.restart()
        self.lost_state = True

    def stop_cell(self, why):
        """Ends the running cell now: its kernel is killed, and the cell's reader restarts it."""
        self.stopped_by = why
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self):
        self._kill()
        self.running = None
        self.lost_state = False
        self.stopped_by = None
        self._start()
        self.restarts += 1

    def shutdown(self):
        self._kill()
