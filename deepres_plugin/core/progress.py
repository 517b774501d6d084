"""Progress bars that suit where they are written.

On a terminal a bar is tqdm's, redrawn in place. Anywhere else (a log file, a pipe, a batch
job's output, Scipion's run log) nothing is written while the work runs and one line, the
bar's final state, when it ends: tqdm's redraws are carriage returns, which a file keeps
as they are, so a log would get every refresh of the bar, and the last one twice (on the
last update and again when the bar closes).
"""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterator, Sequence, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


def is_terminal(stream: TextIO | None) -> bool:
    """Whether ``stream`` is an interactive terminal (False for a file, a pipe, a closed stream)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


class FinalLineBar(tqdm):
    """A tqdm bar that writes nothing while it runs and its final state, on one line, when it
    closes (the overall rate, not a recent one)."""

    def __init__(self, *args, **kwargs):
        # never displayed while running: a display is due only after `delay` seconds
        super().__init__(*args, **{**kwargs, "delay": float("inf"), "smoothing": 0})

    def close(self):
        if getattr(self, "disable", True):          # disabled, or closed already
            return
        line = str(self)
        super().close()                             # never displayed: writes nothing
        self.fp.write(line + "\n")
        getattr(self.fp, "flush", lambda: None)()


def progress_bar(iterable=None, *, enabled: bool = True, file: TextIO | None = None, **options: Any) -> tqdm:
    """A progress bar on ``file`` (default stderr), tqdm's options otherwise: live on a
    terminal, one final line elsewhere (:class:`FinalLineBar`), nothing when not ``enabled``."""
    stream = sys.stderr if file is None else file
    if not enabled or is_terminal(stream):
        return tqdm(iterable, file=stream, disable=not enabled, **options)
    return FinalLineBar(iterable, file=stream, **options)


def is_live(bar: tqdm) -> bool:
    """Whether ``bar`` is drawn while it runs (a terminal bar, :func:`progress_bar`)."""
    return not bar.disable and not isinstance(bar, FinalLineBar)


@contextlib.contextmanager
def logging_above(bar: tqdm, loggers: Sequence[logging.Logger]) -> Iterator[None]:
    """Log records of ``loggers`` printed above a live bar instead of through it; a bar that
    is not drawn while it runs needs nothing (tqdm's redirection would redraw it, into a
    log file, after every record)."""
    if not is_live(bar):
        yield
        return
    with logging_redirect_tqdm(list(loggers)):
        yield
