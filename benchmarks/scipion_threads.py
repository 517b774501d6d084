"""Scipion threads: a set of maps through the local-resolution protocol with 1 and 2 threads.

Each prediction step of a set runs ``deepres predict`` as a process of its own (one thread
each), so Scipion's threads run that many predictions side by side. The script makes a
throw-away headless Scipion project, imports a SetOfVolumes of ``--maps`` copies of the
bundled example map (120 x 60 x 72 at 1 Å/px, low-passed at a few resolutions, with its
mask), runs the protocol with each number of threads in ``--threads`` (GPU off, range
wide) and prints the wall time of each run (from the first step's start to the last step's
end). With ``--doc FILE`` it writes the table between the ``scipion-threads`` markers.

Usage::

    python benchmarks/scipion_threads.py [--maps 4] [--threads 1 2] [--doc docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deepres_plugin.workflow import scipion_environment  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "deepres_plugin" / "tests" / "data"
#: Low-pass resolutions (Å) of the copies, repeated as needed (None: as it is).
LOWPASS = (None, 6.0, 9.0, 4.5)
DOC_KEY = "scipion-threads"


def write_maps(folder: Path, count: int) -> tuple[list[Path], Path]:
    from deepres_plugin.core.filters import lowpass_filter
    from deepres_plugin.core.mrc import read_map, write_map

    volume, geometry = read_map(DATA / "example_map.mrc")
    paths = []
    for index in range(count):
        resolution = LOWPASS[index % len(LOWPASS)]
        data = volume if resolution is None else lowpass_filter(volume, 1.0, resolution)
        paths.append(folder / f"map_{index + 1}.mrc")
        write_map(paths[-1], np.ascontiguousarray(data, np.float32), geometry)
    mask = folder / "mask.mrc"
    write_map(mask, read_map(DATA / "example_mask.mrc.gz")[0].astype(np.float32), geometry)
    return paths, mask


def run(threads_list: list[int], count: int) -> dict[int, float]:
    scipion_environment()
    from pwem.protocols import ProtImportMask, ProtImportVolumes
    from pyworkflow.project import Manager

    from deepres_plugin import constants
    from deepres_plugin.protocols import ProtDeepResLocalResolution

    folder = Path(tempfile.mkdtemp(prefix="deepres-threads-"))
    _, mask = write_maps(folder, count)
    project = Manager().createProject(f"threads-{os.getpid()}")
    os.chdir(project.getPath())

    def launch(prot):
        project.launchProtocol(prot, wait=True)
        prot = project.getProtocol(prot.getObjId())
        if not prot.isFinished():
            raise RuntimeError(f"{prot.getRunName()} failed: {prot.getErrorMessage()}")
        return prot

    maps = launch(project.newProtocol(ProtImportVolumes, filesPath=str(folder), filesPattern="map_*.mrc",
                                      samplingRate=1.0))
    masks = launch(project.newProtocol(ProtImportMask, maskPath=str(mask), samplingRate=1.0))
    seconds = {}
    for threads in threads_list:
        prot = project.newProtocol(ProtDeepResLocalResolution, numberOfThreads=threads,
                                   resolutionRange=constants.RANGE_WIDE, useGpu=False)
        prot.inputVolume.set(maps)
        prot.inputVolume.setExtended("outputVolumes")
        prot.inputMask.set(masks)
        prot.inputMask.setExtended("outputMask")
        prot = launch(prot)
        steps = prot.loadSteps()
        seconds[threads] = (max(s.endTime.datetime() for s in steps)
                            - min(s.initTime.datetime() for s in steps)).total_seconds()
        print(f"{count} maps, {threads} thread{'s' if threads > 1 else ''}: {seconds[threads]:.1f} s", flush=True)
    return seconds


def markdown(seconds: dict[int, float], count: int) -> str:
    rows = [f"| {threads} | {value:.1f} |" for threads, value in seconds.items()]
    return "\n".join([f"A set of {count} maps (120 x 60 x 72 at 1 Å/px) through *deepres - estimate local "
                      "resolution*, GPU off, wide range, on this 2-core machine:", "",
                      "| Scipion threads | wall time (s) |", "|---|---|", *rows, "",
                      f"Command: `python benchmarks/scipion_threads.py --maps {count} --threads "
                      f"{' '.join(map(str, seconds))}`."])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--doc", type=Path, help="write the table into this markdown file")
    args = parser.parse_args()
    table = markdown(run(args.threads, args.maps), args.maps)
    print(table)
    if args.doc:
        from robustness import replace_section

        replace_section(args.doc.resolve(), DOC_KEY, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
