"""Installation of the DeepRes Scipion plugin (``deepres_plugin``) and the ``deepres`` command."""
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """Single source of the version: ``deepres_plugin/version.py``."""
    namespace: dict = {}
    exec((HERE / "deepres_plugin" / "version.py").read_text(), namespace)
    return namespace["__version__"]


setup(
    name="scipion-em-deepres",
    version=read_version(),
    description="DeepRes: deep-learning local resolution of cryo-EM maps, as a Scipion plugin and a command line",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.10,<3.13",
    # namespace discovery: the data folders (models, tests/data) ship as packages of data files
    packages=find_namespace_packages(include=["deepres_plugin", "deepres_plugin.*"], exclude=["*__pycache__*"]),
    include_package_data=True,
    package_data={
        "deepres_plugin": [
            "protocols.conf",
            "models/*",
            "templates/*.json.template",
            "tests/data/*",
        ]
    },
    install_requires=[
        # Scipion pins numpy 1.26.1, matplotlib 3.8.1 and scipy<=1.10: the ranges below admit them.
        "scipion-pyworkflow>=3.11",
        "scipion-em>=3.11",
        "numpy>=1.24,<2",
        "scipy>=1.9",
        "mrcfile>=1.4",
        "gemmi>=0.6.5",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "tensorflow>=2.16",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={
        "pyworkflow.plugin": ["deepres_plugin = deepres_plugin"],
        "console_scripts": ["deepres = deepres_plugin.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
