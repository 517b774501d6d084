"""Installation shim: the metadata of ``scipion-em-deepres`` (version, dependencies, the
``pyworkflow.plugin`` entry point, the ``deepres`` command, package data) is in pyproject.toml."""
from setuptools import setup

setup()
