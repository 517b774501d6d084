"""B-factor sweep against oversharpening (section 3.4 and Fig. 5 of the DeepRes paper).

FSC-based local resolution from the half maps does not change with a global B-factor;
DeepRes does. For each B of the sweep the averaged map is sharpened and low-passed at the
global FSC resolution (as post-processing does) and DeepRes is run on it; the B-factor
whose DeepRes 20th percentile is closest to the local-FSC 20th percentile is recommended.
Where DeepRes reports clearly better resolution than the half maps support, the map is
oversharpened; clearly worse, under-sharpened.
"""
from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from .errors import ParameterError
from .outputs import SWEEP_ROW_KEYS

#: Default sweep: -200 to 0 A^2 in steps of 20.
DEFAULT_BFACTORS = "-200:0:20"
#: A DeepRes 20th percentile within this fraction of the local-FSC one is "good".
VERDICT_TOLERANCE = 0.1
VERDICTS = ("oversharpened", "good", "under-sharpened")
#: Voxels per B-factor drawn in the violins (a random subset of larger maps).
PLOT_SAMPLES = 20000
#: The sweep compares 20th percentiles (the better-resolved part of the map), as the paper.
PERCENTILE = 20
MAX_BFACTORS = 200


def parse_bfactors(text: str) -> list[float]:
    """B-factors (A^2) from ``start:stop:step`` (stop included) or a comma list ``-150,-100,0``.

    Raises:
        ParameterError: unreadable, empty, zero or wrong-signed step, or too many values.
    """
    parts = text.split(":") if ":" in text else [p for p in text.split(",") if p.strip()]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if ":" in text and len(numbers) != 3 or not numbers:
        raise ParameterError(f"B-factors {text!r}: give start:stop:step (e.g. -200:0:20) or a list "
                             "(e.g. -150,-100,0)")
    if not np.all(np.isfinite(numbers)):
        raise ParameterError(f"B-factors {text!r} must be finite numbers")
    if ":" in text:
        start, stop, step = numbers
        if step == 0 or (stop - start) * step < 0:
            raise ParameterError(f"B-factor range {text!r}: the step must go from start towards stop")
        steps = (stop - start) / step
        if not np.isfinite(steps) or steps > MAX_BFACTORS:
            raise ParameterError(f"B-factors {text!r}: between 1 and {MAX_BFACTORS} values are needed")
        count = int(np.floor(steps + 1e-9)) + 1
        values = [start + i * step for i in range(min(count, MAX_BFACTORS + 1))]
    else:
        values = numbers
    if not values or len(values) > MAX_BFACTORS:
        raise ParameterError(f"B-factors {text!r}: between 1 and {MAX_BFACTORS} values are needed")
    if not np.all(np.isfinite(values)):
        raise ParameterError(f"B-factors {text!r} must be finite numbers")
    return [round(v, 6) for v in sorted(set(values))]


#: Largest sharpening allowed: exp(-B s^2 / 4) at the low-pass resolution at most e^20 (5e8).
#: Beyond, the sharpened map is the amplified noise of its last shells, not the molecule.
MAX_SHARPENING_EXPONENT = 20.0


def check_sharpening(bfactors: Sequence[float], lowpass: float) -> None:
    """Refuse B-factors that amplify the map's last shells (at ``lowpass`` A) by more than
    ``exp(MAX_SHARPENING_EXPONENT)``.

    Raises:
        ParameterError: naming the worst B, its gain and the most negative B allowed.
    """
    worst = min(bfactors)
    exponent = -worst / (4.0 * lowpass ** 2)
    if exponent > MAX_SHARPENING_EXPONENT:
        limit = -MAX_SHARPENING_EXPONENT * 4.0 * lowpass ** 2
        raise ParameterError(f"B = {worst:g} Å² multiplies the map by exp({exponent:.0f}) at {lowpass:.2f} Å: its "
                             f"sharpened map is amplified noise; the most negative B allowed here is {limit:.0f} Å²")


def monotone_verdicts(bfactors: Sequence[float], verdicts: Sequence[str]) -> list[str]:
    """Verdicts ordered as sharpening is: a B more negative than an oversharpened one is
    oversharpened too, a B less negative than an under-sharpened one is under-sharpened too
    (the network's answer saturates at its range's ends, which can rate a map of amplified
    noise "good"). Where both apply, oversharpened wins."""
    order = np.argsort(bfactors)                                    # most negative first
    ordered = [verdicts[i] for i in order]
    over = [i for i, v in enumerate(ordered) if v == VERDICTS[0]]
    under = [i for i, v in enumerate(ordered) if v == VERDICTS[2]]
    result = list(ordered)
    if under:
        for i in range(min(under), len(result)):
            result[i] = VERDICTS[2]
    if over:
        for i in range(0, max(over) + 1):
            result[i] = VERDICTS[0]
    out = [""] * len(verdicts)
    for position, i in enumerate(order):
        out[i] = result[position]
    return out


def verdict(deepres_percentile: float, fsc_percentile: float, tolerance: float = VERDICT_TOLERANCE) -> str:
    """``oversharpened`` when DeepRes' 20th percentile (A) is better than the local FSC's by more
    than ``tolerance`` (a fraction), ``under-sharpened`` when worse by more, else ``good``."""
    if deepres_percentile < fsc_percentile * (1 - tolerance):
        return VERDICTS[0]
    if deepres_percentile > fsc_percentile * (1 + tolerance):
        return VERDICTS[2]
    return VERDICTS[1]


def recommend(bfactors: Sequence[float], deepres_percentiles: Sequence[float], fsc_percentile: float,
              verdicts: Sequence[str] | None = None) -> int:
    """Index of the B-factor whose DeepRes 20th percentile is closest to the local FSC's
    (ties: the least sharpening, i.e. the largest B), among those not oversharpened when
    ``verdicts`` are given (all oversharpened: the least sharpening)."""
    distance = np.abs(np.asarray(deepres_percentiles, dtype=float) - fsc_percentile)
    if verdicts is not None:
        if all(v == VERDICTS[0] for v in verdicts):
            return int(np.argmax(bfactors))
        distance = np.where([v == VERDICTS[0] for v in verdicts], np.inf, distance)
    candidates = np.flatnonzero(distance <= distance.min() + 1e-9)
    return int(candidates[np.argmax(np.asarray(bfactors)[candidates])])


def sweep_rows(bfactors: Sequence[float], values: Sequence[np.ndarray], fsc_percentile: float,
               tolerance: float = VERDICT_TOLERANCE) -> list[dict]:
    """One row per B: DeepRes median, 20th and 80th percentiles (A), the local-FSC 20th
    percentile, their difference and the verdict, keyed as in summary.json and the CSV
    (:data:`.outputs.SWEEP_ROW_KEYS`: ``bfactor_A2``, ``deepres_p20_A``, ...)."""
    rows = []
    for bfactor, v in zip(bfactors, values):
        p20, median, p80 = np.percentile(v, [PERCENTILE, 50, 80])
        row = {"bfactor": float(bfactor), "deepres_median": float(median), "deepres_p20": float(p20),
               "deepres_p80": float(p80), "localfsc_p20": float(fsc_percentile),
               "difference": float(p20 - fsc_percentile), "verdict": verdict(float(p20), fsc_percentile, tolerance)}
        rows.append({SWEEP_ROW_KEYS[field]: value for field, value in row.items()})
    for row, monotone in zip(rows, monotone_verdicts(bfactors, [row["verdict"] for row in rows])):
        row["verdict"] = monotone
    return rows


def sweep_csv(rows: list[dict], recommended: int) -> str:
    """The sweep table as CSV (the rows' keys as columns), with a ``recommended`` column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*SWEEP_ROW_KEYS.values(), "recommended"])
    for i, row in enumerate(rows):
        cells = [row[key] if field == "verdict" else f"{row[key]:g}" if field == "bfactor" else f"{row[key]:.3f}"
                 for field, key in SWEEP_ROW_KEYS.items()]
        writer.writerow([*cells, int(i == recommended)])
    return buffer.getvalue()


def draw_sweep(axes, bfactors: Sequence[float], values: Sequence[np.ndarray], fsc_percentile: float,
               recommended: int, rng: np.random.Generator | None = None) -> None:
    """Fig. 5 of the paper on matplotlib ``axes``: DeepRes distributions per B (violins with
    the 20th percentile marked), the local-FSC 20th percentile as a line and the recommended B
    highlighted (used by :func:`sweep_png` and the Scipion viewer)."""
    rng = rng or np.random.default_rng(0)
    positions = np.arange(len(bfactors))
    shown = [v if v.size <= PLOT_SAMPLES else rng.choice(v, PLOT_SAMPLES, replace=False) for v in values]
    parts = axes.violinplot(shown, positions=positions, showextrema=False, showmedians=True, widths=0.8)
    for i, body in enumerate(parts["bodies"]):
        body.set_facecolor("#cc3311" if i == recommended else "#4477aa")
        body.set_alpha(0.6)
    p20 = [np.percentile(v, PERCENTILE) for v in values]
    axes.plot(positions, p20, "o-", color="#222222", markersize=4, label="DeepRes 20th percentile")
    axes.axhline(fsc_percentile, color="#228833", linestyle="--",
                 label=f"local FSC 20th percentile {fsc_percentile:.2f} Å")
    axes.axvline(recommended, color="#cc3311", linestyle=":",
                 label=f"recommended B = {bfactors[recommended]:g} Å²")
    axes.set_xticks(positions)
    axes.set_xticklabels([f"{b:g}" for b in bfactors], rotation=45 if len(bfactors) > 12 else 0)
    axes.set_xlabel("B-factor (Å²)")
    axes.set_ylabel("DeepRes local resolution (Å)")
    axes.legend(fontsize=8)


def sweep_png(bfactors: Sequence[float], values: Sequence[np.ndarray], fsc_percentile: float,
              recommended: int, global_resolution: float) -> bytes:
    """The sweep plot as PNG bytes."""
    from matplotlib.figure import Figure

    from .report import _render

    figure = Figure(figsize=(max(7.0, 0.55 * len(bfactors) + 2), 4.8))
    axes = figure.add_subplot()
    draw_sweep(axes, bfactors, values, fsc_percentile, recommended)
    axes.set_title(f"B-factor sweep (sharpened, then low-passed at the global FSC resolution "
                   f"{global_resolution:.2f} Å)", fontsize=10)
    figure.tight_layout()
    return _render(figure)
