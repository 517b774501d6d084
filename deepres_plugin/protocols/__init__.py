"""DeepRes protocols (one class per ``protocol_<name>.py`` module, re-exported here)."""
from .protocol_bfactor_sweep import ProtDeepResBfactorSweep
from .protocol_local_filter import ProtDeepResLocalFilter
from .protocol_local_fsc import ProtDeepResLocalFsc
from .protocol_local_resolution import ProtDeepResLocalResolution
from .protocol_model_resolution import ProtDeepResModelResolution
from .protocol_train import ProtDeepResTrain

__all__ = ["ProtDeepResBfactorSweep", "ProtDeepResLocalFilter", "ProtDeepResLocalFsc", "ProtDeepResLocalResolution",
           "ProtDeepResModelResolution", "ProtDeepResTrain"]
