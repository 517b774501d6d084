"""Plugin-level constants: names and versions only (the science lives in ``core``)."""

#: BibTeX key of the DeepRes paper (see ``bibtex.py``).
DEEPRES_CITATION = "RamirezAportela2019"
#: Where the method is described.
#: The plugin as Scipion names it in menus and labels.
DISPLAY_NAME = "deepres"
DEEPRES_PAPER_URL = "https://doi.org/10.1107/S2052252519011692"

#: Resolution range choices of the protocols' "range" parameter (EnumParam indices).
RANGE_WIDE = 0
RANGE_HIGH = 1
#: Local resolution only: the map chooses (a first reading with the wide network).
RANGE_AUTO = 2
RANGE_NAMES = {RANGE_WIDE: "wide", RANGE_HIGH: "high", RANGE_AUTO: "auto"}
RANGE_LABELS = ["wide: 2.5-13 Å (works at 1.0 Å/px)", "high: 1.5-6 Å (works at 0.5 Å/px)"]
#: The choices of the local-resolution protocol (the ranges, then auto).
PREDICTION_RANGE_LABELS = RANGE_LABELS + ["auto: chosen from the map"]

#: Model choices of the local-resolution protocol.
MODEL_SHIPPED = 0
MODEL_TRAINED = 1
MODEL_FILE = 2
MODEL_LABELS = ["shipped network", "trained in this project", "file"]
