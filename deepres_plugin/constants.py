"""Plugin-level constants: names and versions only (the science lives in ``core``)."""

#: BibTeX key of the DeepRes paper (see ``bibtex.py``).
DEEPRES_CITATION = "RamirezAportela2019"
#: Where the method is described.
DEEPRES_PAPER_URL = "https://doi.org/10.1107/S2052252519011692"
