"""DeepRes viewers (one class per ``viewer_<name>.py`` module, re-exported here)."""
from .viewer_local_filter import DeepResLocalFilterViewer
from .viewer_local_fsc import DeepResBfactorSweepViewer, DeepResLocalFscViewer
from .viewer_local_resolution import DeepResViewer
from .viewer_model_resolution import DeepResModelResolutionViewer

__all__ = ["DeepResBfactorSweepViewer", "DeepResLocalFilterViewer", "DeepResLocalFscViewer",
           "DeepResModelResolutionViewer", "DeepResViewer"]
