"""Typed option values for the ``deepres`` commands: each is checked where it is parsed, and a
bad value ends the run with a one-line message naming the option and the reason.

Use as argparse ``type=``: ``parser.add_argument("--noise", type=number(minimum=0))``.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


def number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None,
           below: float | None = None, integer: bool = False, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number (an int when ``integer``) within the given bounds
    (``minimum``/``maximum`` inclusive, ``above``/``below`` exclusive)."""
    suffix = f" {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}{suffix}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}{suffix}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}{suffix}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be less than {below:g}{suffix}, got {text}")
        return value

    parse.__name__ = "integer" if integer else "number"
    return parse


#: A voxel size in A/px.
SAMPLING = number(above=0.0, maximum=1000.0, unit="Å/px")
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
