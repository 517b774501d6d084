"""Run the plugin's workflow template headless, in a new Scipion project.

``python -m deepres_plugin.workflow MAP MASK [--sampling A]`` creates a throw-away Scipion
environment (a temporary SCIPION_HOME and SCIPION_USER_DATA) unless SCIPION_USER_DATA is
already set, fills the template ``deepres_local_resolution`` with the map, mask and
sampling, runs its protocols in order and prints the project path and the median local
resolution. The map and mask are first copied as float32 MRC (Scipion's importers do not
read float16 or 8-bit files). ``make demo`` uses it on the bundled example.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from .core.mrc import read_map, write_map

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = TEMPLATES / "deepres_local_resolution.json.template"
#: The second template: map and model imports, DeepRes, local filter, per-residue resolution
#: (fields ``map``, ``sampling``, ``model``).
LOCAL_FILTER_TEMPLATE = TEMPLATES / "deepres_local_filter.json.template"


def scipion_environment(root: Path | None = None) -> Path | None:
    """Point Scipion at a fresh home: the folder ``root``, or a new temporary one unless the
    caller set SCIPION_USER_DATA (Scipion reads it when first imported, so call this before
    importing pyworkflow). The one Scipion set-up of the workflow, the benchmarks and the
    tests. Returns the folder, or None when the caller's environment is kept."""
    if root is None and "SCIPION_USER_DATA" in os.environ:
        return None
    root = root or Path(tempfile.mkdtemp(prefix="deepres-scipion-"))
    home, user_data = root / "scipion", root / "user_data"
    (home / "config").mkdir(parents=True, exist_ok=True)
    user_data.mkdir(exist_ok=True)
    os.environ.update({
        "SCIPION_DOMAIN": "pwem", "SCIPION_HOME": str(home), "SCIPION_USER_DATA": str(user_data),
        "SCIPION_TESTS": str(root / "tests"), "SCIPION_PYTHON": sys.executable, "SCIPION_NOTIFY": "False",
        "SCIPION_TEST_NOSYNC": "1", "SCIPION_HOSTS": str(home / "config" / "hosts.conf"), "MPLBACKEND": "Agg",
    })
    from pyworkflow.protocol import HostConfig

    HostConfig.writeBasic(os.environ["SCIPION_HOSTS"])
    return root


def load_template(values: dict[str, str], project_name: str | None = None, template: Path = TEMPLATE):
    """Fill a template's fields (alias -> value; by default the local-resolution template) and
    create a project holding its protocols, saved and not launched. Returns the project; its
    working directory is the current one."""
    from pyworkflow.project import Manager
    from pyworkflow.template import LocalTemplate

    filled = LocalTemplate("deepres_plugin", str(template))
    filled.replaceEnvVariables()     # also splits the text at the ~field~ markers
    filled.parseContent()
    for alias, value in values.items():
        filled.setParamValue(alias, value)
    workflow = filled.createTemplateFile()
    name = project_name or f"deepres-{time.strftime('%y%m%d-%H%M%S')}"
    project = Manager().createProject(name)
    os.chdir(project.getPath())            # Scipion's run paths are relative to the project
    project.loadProtocols(workflow)
    os.unlink(workflow)
    return project


def run_template(values: dict[str, str], project_name: str | None = None, template: Path = TEMPLATE):
    """Fill a template's fields (alias -> value), create a project from it and run its
    protocols in order, each launched once and waited for (no scheduler processes).
    Returns ``(project, protocols)``; raises if a protocol fails."""
    project = load_template(values, project_name, template)
    protocols = sorted(project.getRuns(), key=lambda run: run.getObjId())
    for protocol in protocols:
        project.launchProtocol(protocol, wait=True)
        protocol = project.getProtocol(protocol.getObjId())
        if not protocol.isFinished():
            raise RuntimeError(f"{protocol.getRunName()} failed; see {protocol.getLogPaths()[0]}")
    return project, [project.getProtocol(p.getObjId()) for p in protocols]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepres_plugin.workflow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("map", type=Path, help="map (.mrc, float32)")
    parser.add_argument("mask", type=Path, help="mask on the map's grid (.mrc)")
    parser.add_argument("--sampling", default="1.0", help="voxel size, A/px (default 1.0)")
    args = parser.parse_args(argv)
    scipion_environment()
    inputs = Path(tempfile.mkdtemp(prefix="deepres-workflow-inputs-"))
    files = {}
    for alias, path in (("map", args.map), ("mask", args.mask)):
        volume, geometry = read_map(path)            # Scipion's importers read float32 MRC only
        files[alias] = str(inputs / f"{alias}.mrc")
        write_map(files[alias], volume, geometry)
    project, protocols = run_template({**files, "sampling": args.sampling})
    deepres = protocols[-1]
    print(f"Scipion project: {project.getPath()}")
    print(f"DeepRes median local resolution: {deepres.medianResolution.get():.2f} Å")
    return 0


if __name__ == "__main__":
    sys.exit(main())
