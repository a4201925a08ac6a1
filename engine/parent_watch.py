"""Stop a child process when its parent is gone: the parent holds the child's stdin open,
and stdin closes (EOF) when the parent exits or crashes, so a thread that reads stdin until
EOF then sends this process SIGTERM (its normal, graceful stop). Used by ``inkhue serve``
when the Krita plugin started it (INKHUE_STOP_ON_STDIN_EOF=1: a Krita that crashes never
stops its engine otherwise) and by ``inkhue finetune --stop-on-stdin-eof`` (the server)."""

from __future__ import annotations

import os
import signal
import sys
import threading

#: Set to "1" by a parent that keeps the engine's stdin open for as long as it lives.
ENV = "INKHUE_STOP_ON_STDIN_EOF"


def _read_until_eof() -> None:
    try:
        fd = sys.stdin.fileno()
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader makes
        # the interpreter abort at exit
        while os.read(fd, 4096):
            pass
    except (OSError, ValueError):  # no stdin at all: the parent gave none to hold
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def stop_when_stdin_closes() -> threading.Thread:
    """Start the watch (a daemon thread); returns it."""
    thread = threading.Thread(target=_read_until_eof, name="inkhue-stdin-watch", daemon=True)
    thread.start()
    return thread
