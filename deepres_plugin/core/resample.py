"""Fourier resampling of maps to another voxel size, and back onto the original grid.

A map is a band-limited, periodic signal; resampling evaluates its Fourier series at the
new voxel positions. Along each axis this is a product with a small matrix (the periodic
sinc, or Dirichlet, kernel), so the target voxel size is met exactly, whatever the ratio
of voxel sizes, and the three axes are done with three matrix products (BLAS, no loops
over voxels). When the new grid is coarser, frequencies beyond its Nyquist are dropped
first (the equivalent of Fourier cropping); when it is finer, nothing is added (Fourier
padding). The first voxel keeps its physical position, so the MRC origin is unchanged.

Voxel sizes are in A/px.
"""
from __future__ import annotations

import numpy as np

from .errors import ParameterError

#: Two frequencies closer than this (relative) are treated as equal (cut-off at a Nyquist).
_FREQUENCY_TOLERANCE = 1e-9
#: Interpolation weights and map values below this fraction of the largest are set to 0. They
#: are rounding residue, far below float32's resolution (6e-8), and their products fall into
#: denormal floats, which made the matrix products 5-9 x slower on this project's CPU
#: (400^3 map with solvent at 0, resampled to 0.5 A/px: 5.5 s -> 1.2 s per slab of planes).
NEGLIGIBLE_FRACTION = 1e-9
#: Where the resampling's matrix products run.
BACKENDS = ("numpy", "tensorflow")


def resampled_shape(shape: tuple[int, ...], voxel_size: float, new_voxel_size: float) -> tuple[int, ...]:
    """Grid that covers the same physical box at ``new_voxel_size``: round(n * a / a')."""
    return tuple(max(1, int(round(n * voxel_size / new_voxel_size))) for n in shape)


def fourier_interpolation_matrix(n_in: int, voxel_in: float, n_out: int, voxel_out: float) -> np.ndarray:
    """Matrix ``M`` (n_out x n_in) so that ``M @ f`` resamples a periodic 1D signal.

    ``f`` has ``n_in`` samples spaced ``voxel_in`` A; the result has ``n_out`` samples spaced
    ``voxel_out`` A starting at the same position. Frequencies above either Nyquist are
    excluded, a frequency exactly at a Nyquist gets half weight (the real-signal convention).
    """
    period = n_in * voxel_in                          # A
    k = np.arange(1, n_in // 2 + 1, dtype=np.float64)  # positive frequency indices
    freq = k / period                                 # 1/A
    out_nyquist = 0.5 / voxel_out
    in_nyquist = 0.5 / voxel_in
    weight = np.ones_like(freq)
    for nyquist in (in_nyquist, out_nyquist):
        at_nyquist = np.abs(freq - nyquist) <= _FREQUENCY_TOLERANCE * nyquist
        beyond = freq > nyquist * (1 + _FREQUENCY_TOLERANCE)
        weight = np.minimum(weight, np.where(beyond, 0.0, np.where(at_nyquist, 0.5, 1.0)))
    x_out = np.arange(n_out) * voxel_out / voxel_in   # output positions in input voxels
    m_in = np.arange(n_in, dtype=np.float64)
    theta = 2.0 * np.pi / n_in
    # cos(k theta (x - m)) = cos(k theta x) cos(k theta m) + sin(k theta x) sin(k theta m)
    cos_out, sin_out = np.cos(theta * np.outer(x_out, k)), np.sin(theta * np.outer(x_out, k))
    cos_in, sin_in = np.cos(theta * np.outer(m_in, k)), np.sin(theta * np.outer(m_in, k))
    series = (cos_out * weight) @ cos_in.T + (sin_out * weight) @ sin_in.T
    return _drop_negligible((1.0 + 2.0 * series) / n_in)


def _drop_negligible(values: np.ndarray) -> np.ndarray:
    """``values`` with the entries below :data:`NEGLIGIBLE_FRACTION` of the largest set to 0."""
    largest = np.abs(values).max(initial=0.0)
    return np.where(np.abs(values) < NEGLIGIBLE_FRACTION * largest, 0, values).astype(values.dtype, copy=False)


def _check_arguments(volume: np.ndarray, voxel_size: float, new_voxel_size: float) -> None:
    if voxel_size <= 0 or new_voxel_size <= 0:
        raise ParameterError("voxel sizes must be positive")
    if volume.ndim != 3:
        raise ParameterError(f"expected a 3D map, got {volume.ndim} dimensions")


class SlabResampler:
    """Fourier resampling of a map to ``new_voxel_size`` A/px, produced a slab of output
    z-planes at a time: the x and y axes are resampled once for the whole map, the z axis
    for the planes asked for, so the resampled map never has to exist whole.

    Args:
        volume: map indexed [z, y, x].
        voxel_size: its voxel size (A/px).
        new_voxel_size: target voxel size (A/px).
        shape: output shape; default :func:`resampled_shape` (same physical box).
        backend: ``numpy`` or ``tensorflow`` for the matrix products (:data:`BACKENDS`).
            TensorFlow's oneDNN ran them 2-3 x faster than numpy's OpenBLAS on this
            project's CPU (400^3 map to 0.5 A/px: x and y 5.8 -> 2.2 s, a 60-plane z block
            0.43 -> 0.23 s); the prediction, which has TensorFlow loaded, uses it.

    Attributes:
        shape: the shape of the whole resampled map.
    """

    def __init__(self, volume: np.ndarray, voxel_size: float, new_voxel_size: float,
                 shape: tuple[int, int, int] | None = None, backend: str = "numpy"):
        _check_arguments(volume, voxel_size, new_voxel_size)
        if backend not in BACKENDS:
            raise ParameterError(f"resampling backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.shape = tuple(shape) if shape is not None else resampled_shape(volume.shape, voxel_size,
                                                                            new_voxel_size)
        z, y, x = (fourier_interpolation_matrix(n_in, voxel_size, n_out, new_voxel_size).astype(np.float32)
                   for n_in, n_out in zip(volume.shape, self.shape))
        volume = _drop_negligible(np.asarray(volume, dtype=np.float32))
        # each matrix applied as a product over contiguous memory (no axis moves): x as the
        # last axis, y batched over z; z later, over the flattened (y, x) plane
        if backend == "tensorflow":
            import tensorflow as tf

            planes = tf.reshape(tf.matmul(tf.reshape(volume, [-1, volume.shape[2]]), x.T),
                                [volume.shape[0], volume.shape[1], self.shape[2]])
            self._planes = tf.reshape(tf.matmul(y, planes), [volume.shape[0], -1])
            self._z = tf.constant(z)
        else:
            self._planes = np.matmul(y, volume @ x.T).reshape(volume.shape[0], -1)
            self._z = z
        self.backend = backend

    def planes(self, start: int, stop: int) -> np.ndarray:
        """Resampled planes ``start`` to ``stop`` (exclusive), zeros for planes outside the map."""
        out = np.zeros((stop - start,) + self.shape[1:], np.float32)
        low, high = max(start, 0), min(stop, self.shape[0])
        if high > low:
            product = self._z[low:high] @ self._planes
            if self.backend == "tensorflow":
                product = product.numpy()
            out[low - start:high - start] = product.reshape((high - low,) + self.shape[1:])
        return out


def fourier_resample(volume: np.ndarray, voxel_size: float, new_voxel_size: float,
                     shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Resample a map to ``new_voxel_size`` A/px by Fourier interpolation.

    Args:
        volume: map indexed [z, y, x].
        voxel_size: its voxel size (A/px).
        new_voxel_size: target voxel size (A/px).
        shape: output shape; default :func:`resampled_shape` (same physical box). Pass the
            original shape to come back onto the original grid exactly.

    Returns:
        float32 map of ``shape`` with voxel size exactly ``new_voxel_size``.
    """
    _check_arguments(volume, voxel_size, new_voxel_size)
    if shape is None:
        shape = resampled_shape(volume.shape, voxel_size, new_voxel_size)
    if tuple(shape) == volume.shape and np.isclose(voxel_size, new_voxel_size, rtol=1e-12, atol=0):
        return volume.astype(np.float32, copy=True)
    return SlabResampler(volume, voxel_size, new_voxel_size, shape).planes(0, shape[0])
