# Run once in every kernel the code-interpreter service starts, in a namespace of its own
# (the user's namespace stays clean). Leaves a `_wrenn` module for the service's silent cells.
import mmap
import os
import struct
import sys
import time
import types

from IPython import get_ipython
from IPython.core.formatters import BaseFormatter
from traitlets import ObjectName, Unicode

shell = get_ipython()
# Tracebacks without ANSI colour codes: they are read as text, not shown in a terminal.
shell.run_line_magic("colors", "NoColor")


class DataFrameFormatter(BaseFormatter):
    """`e2b/data`: a pandas DataFrame's columns as lists (E2B's `result.data`)."""

    format_type = Unicode("e2b/data")
    print_method = ObjectName("_repr_e2b_data_")
    _return_type = (dict,)

    def __call__(self, obj):
        pandas = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
        if pandas is None or not isinstance(obj, pandas.DataFrame):
            return super().__call__(obj)
        columns = obj.to_dict(orient="list")
        return {
            str(name): [v.isoformat() if isinstance(v, pandas.Timestamp) else v for v in values]
            for name, values in columns.items()
        }


shell.display_formatter.formatters["e2b/data"] = DataFrameFormatter(
    parent=shell.display_formatter
)

# ipykernel sends what a cell prints from its IO thread every 0.2 s, but a cell printing in a
# loop holds the GIL: one message then carried tens of MB (the service, parsing it, needed several
# times that). Sent once 1 MiB waits, a message stays small, and printing waits for the send.
FLUSH_AT = 1024 * 1024
# Nor does the service's reading hold the kernel back (IOPub never waits): once this many
# characters written are unread by the service (read_counter.py), a write waits for it.
UNREAD_MAX = 4 * 1024 * 1024
# A service that does not read (stopped, or descheduled on a busy host) is waited for this long
# at most, and not again until it reads again.
STALL_SECONDS = 3

_written = 0
_reads = None  # the service's count of what it read, mapped
_stalled_at = None


def follow_reads(path):
    global _reads, _written
    with open(path, "rb") as f:
        _reads = mmap.mmap(f.fileno(), 8, access=mmap.ACCESS_READ)
    _written = 0


def _read():
    return struct.unpack_from("<Q", _reads, 0)[0]


def _wait_for_reader():
    global _stalled_at
    read = _read()
    if _written - read <= UNREAD_MAX or read == _stalled_at:
        return
    deadline = time.monotonic() + STALL_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.001)
        read = _read()
        if _written - read <= UNREAD_MAX:
            return
    _stalled_at = read


def _flush_at_size(stream):
    write = stream.write

    def bounded_write(string):
        global _written
        written = write(string)
        _written += len(string)
        if stream._buffer.tell() >= FLUSH_AT:
            stream.flush()
            if _reads is not None:
                _wait_for_reader()
        return written

    stream.write = bounded_write


for _stream in (sys.stdout, sys.stderr):
    _flush_at_size(_stream)


def _counted_display(publish):
    """Displayed results count as written too (their text fields, as the service counts them):
    a loop of display() waits for the service as a loop of print() does."""

    def counted(data, *args, update=False, **kwargs):
        global _written
        publish(data, *args, update=update, **kwargs)
        if not update:
            _written += sum(len(v) for v in data.values() if isinstance(v, str))
            if _reads is not None:
                _wait_for_reader()

    return counted


shell.display_pub.publish = _counted_display(shell.display_pub.publish)

# A cell's env_vars hold for that cell only: set before it, restored after.
_saved = {}


def set_env(encoded):
    import json

    _saved.clear()
    for key, value in json.loads(encoded).items():
        _saved[key] = os.environ.get(key)
        os.environ[key] = value


def restore_env():
    for key, value in _saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved.clear()


module = types.ModuleType("_wrenn")
module.set_env = set_env
module.restore_env = restore_env
module.follow_reads = follow_reads
sys.modules["_wrenn"] = module
