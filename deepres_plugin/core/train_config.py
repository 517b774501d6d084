"""Options of a training run (no Keras import, so the command line can show defaults cheaply)."""
from __future__ import annotations

import dataclasses

from .errors import ParameterError
from .networks import ARCHITECTURES, DEFAULT_FILTERS, DEFAULT_HIDDEN
from .ranges import get_range


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of a training run."""

    range_name: str
    architecture: str = "deepres"
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 5
    seed: int = 0
    filters: int = DEFAULT_FILTERS
    hidden: int = DEFAULT_HIDDEN
    dropout: float = 0.0

    def validate(self) -> None:
        get_range(self.range_name)
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"unknown architecture {self.architecture!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ParameterError("epochs, batch size and patience must be at least 1")
        if not 0 <= self.dropout < 1 or not 0 < self.learning_rate < float("inf"):
            raise ParameterError("dropout must lie in [0, 1) and the learning rate be positive")
