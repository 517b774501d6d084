"""Frequency grids for real-to-complex FFTs of maps indexed [z, y, x]."""
from __future__ import annotations

import numpy as np
import scipy.fft


def frequency_magnitude(shape: tuple[int, int, int], voxel_size: float = 1.0) -> np.ndarray:
    """|s| on the ``rfftn`` grid of a map of ``shape``.

    Args:
        shape: real-space shape (z, y, x) in voxels.
        voxel_size: A/px. With the default 1.0 the result is the digital frequency
            (cycles per voxel, 0.5 at Nyquist); otherwise it is in 1/A.

    Returns:
        float64 array of shape ``(nz, ny, nx // 2 + 1)``.
    """
    fz = scipy.fft.fftfreq(shape[0], d=voxel_size)
    fy = scipy.fft.fftfreq(shape[1], d=voxel_size)
    fx = scipy.fft.rfftfreq(shape[2], d=voxel_size)
    return np.sqrt(fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2)


def rfft_map(volume: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Real-to-complex FFT of a map (float64 precision is kept if given)."""
    return scipy.fft.rfftn(volume, workers=workers)


def irfft_map(spectrum: np.ndarray, shape: tuple[int, ...], workers: int | None = None) -> np.ndarray:
    """Inverse of :func:`rfft_map` back to a real array of ``shape``."""
    return scipy.fft.irfftn(spectrum, s=shape, workers=workers)
