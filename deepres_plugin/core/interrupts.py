"""Interrupts as one concept: SIGINT (Ctrl-C), SIGTERM (a queue's or a kill's request) and
SIGHUP (a closed terminal) all end a command the same way, by an :class:`Interrupted`
exception in the main thread, so that every ``finally`` and ``except BaseException`` clean-up
runs (temporary files, staged run folders) and the command exits with 128 + the signal's
number, the status a shell gives a process killed by that signal.

Critical sections (the renames that swap a run's new files in, the creation of a temporary
file and its entry on the clean-up list) run under :func:`deferred_interrupts`: a signal that
arrives there is held and raised when the section ends, so a run folder is either the old
one or the new one, never a mix.

Nothing here acts unless a command installs the handlers (:func:`interrupts_as_exceptions`);
a library user's own handlers are left alone.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

#: The signals that end a command cleanly; SIGHUP does not exist on Windows.
INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
#: A process ended by signal N exits with this + N (the shell's convention: Ctrl-C gives 130).
SIGNAL_EXIT_BASE = 128


class Interrupted(KeyboardInterrupt):
    """A command was asked to stop by a signal (a KeyboardInterrupt, so that code which lets
    Ctrl-C through lets every interrupt through)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""
        return SIGNAL_EXIT_BASE + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class _State:
    """How many critical sections are open, and a signal that came during one."""

    depth = 0
    pending: int | None = None


def _handler(signum: int, frame) -> None:
    if _State.depth:
        _State.pending = _State.pending or signum
        return
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main
    thread; the earlier handlers come back afterwards. Does nothing outside the main thread
    (where Python cannot install handlers)."""
    if not _in_main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in INTERRUPT_SIGNALS}
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold an interrupt that arrives within the block until it ends, then raise it (when the
    block itself succeeded; a failing block's own exception goes first). Nests; outside the
    handlers of :func:`interrupts_as_exceptions` (and for Ctrl-C under Python's default
    handler) it only delays the KeyboardInterrupt."""
    if not _in_main_thread():
        yield
        return
    default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if default:                                  # a plain Python process: hold Ctrl-C too
        signal.signal(signal.SIGINT, _handler)
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if default:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if not _State.depth and _State.pending is not None:
            signum, _State.pending = _State.pending, None
            raise Interrupted(signum)
