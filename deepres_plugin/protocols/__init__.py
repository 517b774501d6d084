"""DeepRes protocols (one class per ``protocol_<name>.py`` module, re-exported here)."""
from .protocol_local_resolution import ProtDeepResLocalResolution
from .protocol_train import ProtDeepResTrain
