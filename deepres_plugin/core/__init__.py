"""Scipion-free scientific core of DeepRes.

Small, typed functions over numpy arrays. Conventions used throughout:

* maps are ``numpy`` arrays indexed ``[z, y, x]`` (the MRC section/row/column order for
  the standard axis order), in float32 unless stated otherwise;
* ``voxel_size`` is in Angstrom per voxel (A/px), isotropic;
* resolutions are in Angstrom (A); spatial frequencies are in 1/A unless a docstring says
  "digital frequency" (cycles per voxel, 0.5 at Nyquist);
* B-factors are in A^2.

Nothing in this package imports pyworkflow or pwem.
"""
