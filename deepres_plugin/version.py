"""Version of the DeepRes plugin; read by pyproject.toml (setuptools) and written into every provenance record."""
__version__ = "0.1.0"
