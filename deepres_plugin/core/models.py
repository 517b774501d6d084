"""The networks shipped inside the package (``deepres_plugin/models``)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ParameterError
from .ranges import get_range

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: File of the shipped network for each range.
SHIPPED_MODELS = {"wide": "deepres_wide.keras", "high": "deepres_high.keras"}


def shipped_model_path(range_name: str) -> Path:
    """Path of the network shipped for ``range_name``.

    Raises:
        ParameterError: unknown range, or no network shipped for it in this installation.
    """
    path = MODELS_DIR / SHIPPED_MODELS[get_range(range_name).name]
    if not path.is_file():
        raise ParameterError(f"no trained network for the {range_name!r} range is shipped with this "
                             f"installation ({path.name} missing); give a network file", option="--model")
    return path


def chosen_model_path(model: str | os.PathLike | None, range_name: str) -> Path:
    """The network a run uses: the file ``model`` when one is given, else the one shipped for
    ``range_name`` (:func:`shipped_model_path`)."""
    return Path(model) if model else shipped_model_path(range_name)
