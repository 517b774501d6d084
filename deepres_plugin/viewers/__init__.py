"""DeepRes viewers (one class per ``viewer_<name>.py`` module, re-exported here)."""
