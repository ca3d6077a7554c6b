"""How much of a kernel's output the service has read, shared with the kernel.

Jupyter's IOPub does not wait for its reader. A cell printing in a loop could send faster than
the service parsed, and what was not parsed yet piled up in the service's ZeroMQ queue (270 MiB
seen for 300 MB printed). The service counts the characters it reads of stream output and of
displayed results' text fields into a file the kernel maps; the kernel's writes wait while too
much of what it wrote is unread (kernel_startup.py).
"""

import mmap
import os
import struct
import tempfile
import threading


class ReadCounter:
    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="wrenn-read-")
        try:
            os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self._count = 0
        # Counted by the cell's follower and by the context's IOPub reader (what no one follows).
        self._lock = threading.Lock()

    def reset(self):
        """A new kernel: it has written nothing yet."""
        with self._lock:
            self._count = 0
            struct.pack_into("<Q", self._map, 0, 0)

    def add(self, chars):
        with self._lock:
            self._count += chars
            struct.pack_into("<Q", self._map, 0, self._count)

    def close(self):
        self._map.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
