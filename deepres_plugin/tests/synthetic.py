"""Small synthetic inputs shared by the command-line tests: a density of known resolution
and a cubic mask inside it."""
import numpy as np

from deepres_plugin.core.filters import lowpass_filter

#: The maps' shape (z, y, x), at 1 Å/px.
SHAPE = (40, 40, 40)
#: The density's low-pass (Å), and the empty planes at each end along z (voxels).
SIGNAL_RESOLUTION_A, EMPTY_PLANES = 5.0, 8


def signal_and_mask(rng: np.random.Generator, shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Random density low-passed at :data:`SIGNAL_RESOLUTION_A` (1 Å/px), empty in the outer
    :data:`EMPTY_PLANES` planes along z, and a float32 mask of the central cube (half the
    box's edge)."""
    signal = lowpass_filter(rng.standard_normal(shape).astype(np.float32), 1.0, SIGNAL_RESOLUTION_A)
    signal[:EMPTY_PLANES] = signal[-EMPTY_PLANES:] = 0
    mask = np.zeros(shape, np.float32)
    mask[tuple(slice(n // 4, 3 * n // 4) for n in shape)] = 1
    return signal, mask


def noisy(signal: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """``signal`` plus white Gaussian noise of SD ``sd`` (float32)."""
    return signal + sd * rng.standard_normal(signal.shape).astype(np.float32)
