"""Typed option values for the ``deepres`` commands: each is checked where it is parsed, and a
bad value ends the run with a one-line message naming the option and the reason.

Use as argparse ``type=``: ``parser.add_argument("--noise", type=number(minimum=0))``.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

from ..core.errors import ParameterError
from ..core.mrc import VOXEL_SIZE_RANGE_A
from ..core.report import check_palette
from ..core.simulate import SEED_RANGE


def number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None,
           below: float | None = None, integer: bool = False, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number (an int when ``integer``) within the given bounds
    (``minimum``/``maximum`` inclusive, ``above``/``below`` exclusive)."""
    suffix = f" {unit}" if unit else ""

    def bound(value: float) -> str:
        return str(int(value)) if integer else f"{value:g}"

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        # exclusive bounds first: "more than 0" says more about 0 than "at least 0.1" does
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {bound(above)}{suffix}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be less than {bound(below)}{suffix}, got {text}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {bound(minimum)}{suffix}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {bound(maximum)}{suffix}, got {text}")
        return value

    parse.__name__ = "integer" if integer else "number"
    return parse


def palette(text: str) -> str:
    """An argparse type: the name of a matplotlib colour map (:func:`.core.report.check_palette`)."""
    try:
        check_palette(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


#: A voxel size in A/px, within the plausible range of the core's map checks.
SAMPLING = number(above=0.0, minimum=VOXEL_SIZE_RANGE_A[0], maximum=VOXEL_SIZE_RANGE_A[1], unit="Å/px")
#: A seed of a random stream.
SEED = number(minimum=SEED_RANGE[0], maximum=SEED_RANGE[1], integer=True)
#: A matplotlib colour map name.
PALETTE = palette
#: A resolution in A.
RESOLUTION = number(above=0.0, maximum=1000.0, unit="Å")
#: A B-factor in A^2 (beyond this, exp(-B s^2 / 4) over- or underflows at any usual resolution).
BFACTOR = number(minimum=-1000.0, maximum=10000.0, unit="Å²")
#: A fraction in [0, 1].
FRACTION = number(minimum=0.0, maximum=1.0)
#: A positive whole number.
POSITIVE_INT = number(minimum=1, integer=True)
#: Any whole number (seeds).
INTEGER = number(integer=True)
