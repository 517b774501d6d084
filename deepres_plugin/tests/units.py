"""What the Scipion tests check in every text a user reads (summaries, Methods, messages,
forms): units written Å, Å², Å/px, never a bare A."""
import re

#: A number followed by a bare A unit (``8.85 A``, ``179 A^2``, ``1 A/px``, ``3A)``).
BARE_ANGSTROM = re.compile(r"\d ?A(\^2|2)?(?=[\s),.;:/]|$)")


def bare_units(text):
    """The bare A units in ``text`` (with the number before them), for an assertion message."""
    return [match.group(0) for match in BARE_ANGSTROM.finditer(text)]
