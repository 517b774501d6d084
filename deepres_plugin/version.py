"""Version of the DeepRes plugin; read by setup.py and written into every provenance record."""
__version__ = "0.1.0"
