"""Ctrl-C and SIGTERM while a command starts.

A command's imports (torch, torchvision, matplotlib) take seconds before its main() installs
the handlers that turn a signal into one line and exit code 130: Ctrl-C then printed a
KeyboardInterrupt traceback, and SIGTERM killed the process with 143. The package installs these
handlers on import when a fastinfo command is what runs (``python -m fastinfo.X``, or a
``fastinfo-X`` program), never when a program of the user's imports it; each main() releases
them as it starts.
"""

import os
import signal
import sys
import threading
from pathlib import Path

EXIT_INTERRUPTED = 128 + 2  # as fastinfo.arguments.EXIT_INTERRUPTED (this module imports nothing)
_installed = False


def running_a_command() -> bool:
    """Whether this process runs one of fastinfo's commands."""
    argv = getattr(sys, "orig_argv", [])
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1].startswith("fastinfo.")
    return bool(sys.argv) and Path(sys.argv[0]).name.startswith("fastinfo-")


def _stop(_signum, _frame) -> None:
    # nothing has been done yet: nothing to keep, and no interpreter cleanup to wait for
    sys.stderr.write("interrupted: while the command was starting; nothing was done\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def guard() -> None:
    """Until release(): Ctrl-C and SIGTERM end the process with one line and code 130."""
    global _installed
    if running_a_command() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        _installed = True


def release() -> None:
    """Python's own handlers again (Ctrl-C raises KeyboardInterrupt; SIGTERM ends the process)."""
    global _installed
    if _installed and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _installed = False
