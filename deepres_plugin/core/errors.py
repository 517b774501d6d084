"""Exceptions for problems a user can cause; the command line turns them into one-line messages."""


class DeepResError(Exception):
    """Base class of every error caused by the user's input or options.

    Messages name no command-line flag (the Scipion protocols show them too); ``option``
    names the ``deepres`` option that addresses the problem, and the command line adds it.
    """

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class MapFormatError(DeepResError, ValueError):
    """A file is not a usable 3D map: not MRC, not 3D, bad voxel size, NaN/Inf values."""


class MaskError(DeepResError, ValueError):
    """A mask does not fit its map, is empty, or has values outside [0, 1]."""


class StructureError(DeepResError, ValueError):
    """An atomic model cannot be read or has no usable atoms."""


class ParameterError(DeepResError, ValueError):
    """An option has an impossible value (negative resolution, unknown range, ...)."""
