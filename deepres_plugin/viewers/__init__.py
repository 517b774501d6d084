"""DeepRes viewers (one class per ``viewer_<name>.py`` module, re-exported here)."""
from .viewer_local_fsc import DeepResBfactorSweepViewer, DeepResLocalFscViewer
from .viewer_local_resolution import DeepResViewer

__all__ = ["DeepResBfactorSweepViewer", "DeepResLocalFscViewer", "DeepResViewer"]
