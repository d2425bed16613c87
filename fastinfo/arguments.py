"""What the commands share: types for their arguments, each of which parses its text or says what
was wrong and what is accepted (argparse prints it with the option's name and exits with code 2),
their output folders, and how a command stopped by Ctrl-C or SIGTERM ends."""

import argparse
import contextlib
import functools
import signal
import sys
import threading
from pathlib import Path

from fastinfo import startup

EXIT_INTERRUPTED = 128 + 2  # a shell's code for a process ended by SIGINT


def interrupted(what_is_kept: str) -> int:
    """A command stopped by Ctrl-C says in one line what it kept and how to go on, not with a
    traceback; its exit code."""
    print(f"interrupted: {what_is_kept}", file=sys.stderr)
    return EXIT_INTERRUPTED


@contextlib.contextmanager
def signals_handled_by(handler, signals=(signal.SIGINT, signal.SIGTERM)):
    """Within, handler answers these signals; the handlers from before come back after."""
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def stops_as_on_ctrl_c(main):
    """main, with SIGTERM (a job scheduler's stop, `timeout`, `kill`) raised as the KeyboardInterrupt
    of Ctrl-C, which main answers with what it kept: by default SIGTERM ends the process at once,
    a checkpoint being written in the background included. (Called from a thread other than the
    main one, which cannot set signal handlers, main runs as it is.)"""

    @functools.wraps(main)
    def run(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return main(*args, **kwargs)
        startup.release()  # main answers Ctrl-C itself from here on
        with signals_handled_by(_raise_interrupt, (signal.SIGINT, signal.SIGTERM)):
            return main(*args, **kwargs)

    return run


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line: the error, and where the options are listed
    (argparse's own prints the whole usage first, 34 lines for fastinfo.train, with the error last)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (the options: {self.prog} --help)\n")


class FolderError(ValueError):
    """An output folder that cannot be made; the message names its option."""


def make_folder(path: Path, option: str = "--out") -> Path:
    """path, made with its parents where missing; FolderError, before any work, where it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = "a file has its name" if isinstance(e, FileExistsError) else e.strerror
        raise FolderError(f"cannot make the folder {option} {path}: {why}") from None
    return path


def int_at_least(lowest: int):
    """An integer >= lowest."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {value}")
        return value

    return parse


def float_between(low: float, high: float):
    """A number strictly between low and high."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in ({low}, {high}), got {text!r}") from None
        if not low < value < high:
            raise argparse.ArgumentTypeError(f"expected a number in ({low}, {high}), got {value}")
        return value

    return parse


def one_of(accepted):
    """One of the strings in accepted."""

    def parse(text: str) -> str:
        if text not in accepted:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(accepted)}, got {text!r}")
        return text

    return parse


def comma_list(item):
    """Comma-separated values, at least one, each parsed by item; a repeated one counts once."""

    def parse(text: str) -> list:
        values = list(dict.fromkeys(item(part.strip()) for part in text.split(",") if part.strip()))
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        return values

    return parse


def integer_ranges(text: str, what: str, example: str) -> list[int]:
    """Non-negative integers and low-high ranges, comma-separated (5,7-8), in the order given,
    repeats kept. ValueError, naming example as what is accepted, for anything else or a range
    (of what: "seed") that runs backwards."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = (side.strip() for side in part.partition("-"))
        if not (low.isdigit() and (high.isdigit() or not dash)):
            raise ValueError(f"expected {example}, got {text!r}")
        first, last = int(low), int(high or low)
        if last < first:
            raise ValueError(f"the {what} range {part} is empty: write it low-high")
        values.extend(range(first, last + 1))
    return values


def seed_list(text: str) -> list[int]:
    """Seeds as 0,1,2 or 0-4 or both (5,7-8): non-negative integers and ranges, low-high; a seed
    given twice counts once (twice, it would weigh double in the sweep's mean ± std)."""
    try:
        seeds = integer_ranges(text, "seed", "seeds such as 0,1,2 or 0-4")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if max(seeds) >= 2**32:
        raise argparse.ArgumentTypeError(f"seeds are in 0..{2**32 - 1}, got {max(seeds)}")
    return list(dict.fromkeys(seeds))
