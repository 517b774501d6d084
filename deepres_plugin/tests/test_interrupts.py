"""Interrupts and limits, command by command: a run stopped by SIGINT, SIGTERM or SIGHUP at
any moment (start-up, computing, writing, renaming, just after the last rename), or failing
on a full disk or a file-size limit, ends with one line and 128 + the signal (or 1), and
leaves its output folder as it was before or complete from this run, never a mix, with no
temporary file or staging folder left anywhere.

The moments inside a run are reached deterministically: the test sends the signal to its
own process from the file writing and the renames (``fileio._write_content``, ``os.replace``)
while ``deepres`` runs in-process; start-up and computing are real processes signalled from
outside.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core import fileio
from deepres_plugin.core.interrupts import SIGNAL_EXIT_BASE, Interrupted, deferred_interrupts, interrupts_as_exceptions
from deepres_plugin.core.mrc import MapGeometry, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE, SUMMARY_FILE
from deepres_plugin.core.simulate import simulate_map
from deepres_plugin.tests.synthetic import noisy, signal_and_mask

PROTEIN = "BM5_1PPE_l_u.pdb.gz"
#: Names a run may leave behind only while it runs.
HIDDEN_MARKS = (fileio.STAGING_PREFIX, fileio.PREVIOUS_PREFIX, fileio.TEMPORARY_SUFFIX)


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir):
    """Inputs of every command: a map and its mask, two halves, a protein model with the map
    simulated from it and a resolution map on that map's grid."""
    folder = tmp_path_factory.mktemp("interrupt_inputs")
    rng = np.random.default_rng(3)
    signal_map, mask = signal_and_mask(rng)
    paths = {}
    for name, data in (("map", noisy(signal_map, 0.02, rng)), ("half1", noisy(signal_map, 0.3, rng)),
                       ("half2", noisy(signal_map, 0.3, rng)), ("mask", mask)):
        paths[name] = folder / f"{name}.mrc"
        write_map(paths[name], data, MapGeometry(1.0))
    simulated, density = simulate_map(data_dir / PROTEIN, 1.0, 4.0)
    paths["model"] = data_dir / PROTEIN
    paths["model_map"] = folder / "model_map.mrc"
    write_map(paths["model_map"], density, simulated.geometry)
    paths["resolution"] = folder / "resolution.mrc"
    write_map(paths["resolution"], np.where(simulated.atom_mask(), 5.0, 0.0).astype(np.float32), simulated.geometry)
    return paths


#: Each command on the inputs above (``{out}``: the output folder).
COMMANDS = {
    "predict": ["predict", "{map}", "--mask", "{mask}", "--range", "wide", "--no-progress", "--out", "{out}"],
    "localfsc": ["localfsc", "{half1}", "{half2}", "--mask", "{mask}", "--no-progress", "--out", "{out}"],
    "bfactor-sweep": ["bfactor-sweep", "{half1}", "{half2}", "--mask", "{mask}", "--bfactors", "-20:0:20",
                      "--no-progress", "--out", "{out}"],
    "localfilter": ["localfilter", "{model_map}", "{resolution}", "--out", "{out}"],
    "residues": ["residues", "{resolution}", "{model}", "--map", "{model_map}", "--out", "{out}"],
}


def command_line(name: str, files: dict, out: Path) -> list[str]:
    return [part.format(out=out, **files) for part in COMMANDS[name]]


def folder_state(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (relative name -> inode): which run wrote it."""
    return {str(path.relative_to(folder)): path.stat().st_ino for path in sorted(folder.rglob("*")) if path.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporaries and staging folders under ``folder`` (and beside it)."""
    return [str(path) for root in (folder.parent,) for path in root.rglob("*")
            if any(mark in path.name for mark in HIDDEN_MARKS)]


@pytest.fixture(scope="module")
def finished(files, tmp_path_factory):
    """One complete run folder per command (what an interrupted rerun must keep or replace)."""
    root = tmp_path_factory.mktemp("finished")
    for name in COMMANDS:
        assert cli.main(command_line(name, files, root / name)) == 0, name
    return root


def _signal_at(monkeypatch, moment: str, signum: int, out: Path) -> None:
    """Send ``signum`` to this process at ``moment`` of the run writing ``out``: ``writing``
    (while the second output is written), ``renaming`` (right after the second new file is
    placed) or ``after`` (right after the summary, the last file, is placed)."""
    count = {"written": 0, "placed": 0}
    if moment == "writing":
        real_write = fileio._write_content

        def write(content, path, final):
            count["written"] += 1
            if count["written"] == 2:
                os.kill(os.getpid(), signum)
            real_write(content, path, final)

        monkeypatch.setattr(fileio, "_write_content", write)
        return
    real_replace = os.replace

    def replace(source, target):
        real_replace(source, target)
        placed = fileio.STAGING_PREFIX in str(source) and not any(
            prefix in str(target) for prefix in (fileio.STAGING_PREFIX, fileio.PREVIOUS_PREFIX))
        if placed:
            count["placed"] += 1
            if moment == "renaming" and count["placed"] == 2 or \
                    moment == "after" and Path(target) == out / SUMMARY_FILE:
                os.kill(os.getpid(), signum)

    monkeypatch.setattr(fileio.os, "replace", replace)


#: (moment, signal): every moment and every signal, each command through all of them.
MOMENTS = [("writing", signal.SIGTERM), ("renaming", signal.SIGHUP), ("after", signal.SIGINT)]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("moment, signum", MOMENTS, ids=[moment for moment, _ in MOMENTS])
def test_an_interrupted_rerun_leaves_the_old_folder_or_the_new_one(command, moment, signum, files, finished,
                                                                 tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished / command, out)
    before = folder_state(out)
    capsys.readouterr()
    _signal_at(monkeypatch, moment, signum, out)
    status = cli.main(command_line(command, files, out))
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert status == SIGNAL_EXIT_BASE + signum, err
    assert err[-1] == f"deepres {command}: interrupted ({signal.Signals(signum).name})"
    after = folder_state(out)
    assert sorted(after) == sorted(before)                       # the same outputs, none missing or extra
    new = [name for name in after if after[name] != before[name]]
    if moment == "writing":                                      # stopped before the swap: the old folder
        assert new == []
    else:                                                        # held through the swap: the new folder
        assert sorted(new) == sorted(after)
    assert leftovers(out) == []


def test_an_interrupted_first_run_leaves_no_folder(files, tmp_path, monkeypatch, capsys):
    out = tmp_path / "first"
    _signal_at(monkeypatch, "writing", signal.SIGTERM, out)
    assert cli.main(command_line("localfsc", files, out)) == SIGNAL_EXIT_BASE + signal.SIGTERM
    assert not out.exists() and leftovers(out) == []


def test_a_failed_rename_restores_the_old_folder(files, finished, tmp_path, monkeypatch, capsys):
    """A rename that fails halfway (an old file another user owns in a sticky folder, a file
    system error) puts every old file back: old resolution map, old summary."""
    out = tmp_path / "run"
    shutil.copytree(finished / "localfsc", out)
    before = folder_state(out)
    real_replace = os.replace
    count = {"placed": 0}

    def replace(source, target):
        if fileio.STAGING_PREFIX in str(source) and fileio.PREVIOUS_PREFIX not in str(target) \
                and fileio.STAGING_PREFIX not in str(target):
            count["placed"] += 1
            if count["placed"] == 3:
                raise PermissionError(1, "Operation not permitted", str(target))
        real_replace(source, target)

    monkeypatch.setattr(fileio.os, "replace", replace)
    assert cli.main(command_line("localfsc", files, out)) == cli.EXIT_ERROR
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert "Operation not permitted" in err[-1] and "check its permissions" in err[-1]
    assert folder_state(out) == before and leftovers(out) == []


def _deepres(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deepres_plugin.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_ctrl_c_while_the_commands_load_is_one_line_and_130(monkeypatch, capsys):
    real_build = cli.build_parser

    def build():                                     # start-up: importing every command module
        os.kill(os.getpid(), signal.SIGINT)
        return real_build()

    monkeypatch.setattr(cli, "build_parser", build)
    assert cli.main(["localfsc", "a.mrc", "b.mrc"]) == 130
    assert capsys.readouterr().err == "deepres: interrupted (SIGINT)\n"


def test_ctrl_c_soon_after_launch_is_one_line_and_130(files, tmp_path):
    out = tmp_path / "out"
    process = _deepres(command_line("localfsc", files, out))
    time.sleep(0.25)                                 # importing numpy, scipy, the commands (or computing)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == 130, err
    assert lines[-1] in ("deepres: interrupted (SIGINT)", "deepres localfsc: interrupted (SIGINT)"), lines
    assert "Traceback" not in err and not out.exists() and leftovers(out) == []


@pytest.mark.parametrize("command, signum", [("predict", signal.SIGTERM), ("localfsc", signal.SIGHUP)])
def test_a_signal_while_computing_is_one_line_and_leaves_nothing(command, signum, files, tmp_path):
    out = tmp_path / "out"
    process = _deepres(command_line(command, files, out))
    first = process.stderr.readline()                # the first log line: the computation has begun
    process.send_signal(signum)
    _, rest = process.communicate(timeout=120)
    err = (first + rest).strip().splitlines()
    assert first and process.returncode in (SIGNAL_EXIT_BASE + signum, 0), err
    if process.returncode:                            # (a run may end between its first line and the signal)
        assert err[-1] == f"deepres {command}: interrupted ({signal.Signals(signum).name})", err
        assert not out.exists()
    assert not any("Traceback" in line for line in err) and leftovers(out) == []


def _file_size_limit(limit_bytes: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


def test_a_file_size_limit_is_one_line_naming_it(files, tmp_path):
    out = tmp_path / "out"
    process = _deepres(command_line("localfsc", files, out), preexec_fn=_file_size_limit(100_000))
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == cli.EXIT_ERROR, err
    assert "File too large" in lines[-1] and "ulimit -f" in lines[-1], lines
    assert "Traceback" not in err and not out.exists() and leftovers(out) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 200 kB tmpfs (root only; skipped where it cannot be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("command", ["localfsc", "bfactor-sweep"])
def test_a_full_disk_is_one_line_and_keeps_the_old_folder(command, files, finished, small_disk, capsys):
    out = small_disk / "run"
    shutil.copytree(finished / "residues", out)
    before = folder_state(out)
    assert cli.main(command_line(command, files, small_disk / "fresh")) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in err[-1] and "another folder" in err[-1], err
    assert not (small_disk / "fresh").exists() and leftovers(small_disk / "fresh") == []   # no empty report folders
    assert folder_state(out) == before


@pytest.mark.parametrize("command", ["predict", "localfsc", "residues"])
def test_an_output_folder_that_cannot_be_made_fails_before_the_computation(command, files, tmp_path, capsys):
    out = tmp_path / ("x" * 300)                               # longer than a file name may be
    assert cli.main(command_line(command, files, out)) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"deepres {command}: error: cannot read or write ({out}): File name too long"]
    assert list(tmp_path.iterdir()) == []


def test_deferred_interrupts_hold_a_signal_until_the_section_ends():
    order = []
    with interrupts_as_exceptions():
        with pytest.raises(Interrupted) as caught:
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                order.append("section finished")
        order.append("raised")
    assert order == ["section finished", "raised"]
    assert caught.value.exit_status == 143 and caught.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL        # the handlers are given back


def test_a_resolution_file_replaced_by_a_folder_fails_cleanly(files, finished, tmp_path, capsys):
    """A rename onto something that cannot be replaced (a folder) fails before any file moves."""
    out = tmp_path / "run"
    shutil.copytree(finished / "localfsc", out)
    (out / RESOLUTION_FILE).unlink()
    (out / RESOLUTION_FILE).mkdir()
    before = folder_state(out)
    assert cli.main(command_line("localfsc", files, out)) == cli.EXIT_ERROR
    assert "Is a directory" in capsys.readouterr().err
    assert folder_state(out) == before and (out / RESOLUTION_FILE).is_dir() and leftovers(out) == []


def test_out_of_memory_is_one_line_naming_what_to_change(files, tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    from deepres_plugin.commands import predict
    from deepres_plugin.core.inference import tensorflow_device

    with pytest.raises(MemoryError, match="TensorFlow could not allocate memory on CPU"):
        with tensorflow_device("cpu"):                 # what TensorFlow raises, as every other allocation fails
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.53 GiB for an array with shape (224, 224, 224, 32)")

    monkeypatch.setattr(predict, "run_predict", exhausted)
    assert cli.main(command_line("predict", files, tmp_path / "out") + ["--slab-mb", "8"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == f"deepres predict: error: out of memory; {predict.MEMORY_HINT}\n"
    assert "--slab-mb (default 32)" in predict.MEMORY_HINT and not (tmp_path / "out").exists()


def test_a_reader_that_leaves_while_the_command_prints_ends_it_silently(files, tmp_path):
    """``deepres fsc ... | head -0`` with unbuffered output: the print of the resolution fails
    inside the command; it ends with status 1 and nothing on stderr but its log."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "deepres_plugin.cli", "fsc", str(files["half1"]),
                               str(files["half2"]), "--out", str(tmp_path / "fsc")], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        os.close(write_end)
    assert done.returncode == cli.EXIT_ERROR
    assert done.stderr.startswith("INFO: FSC resolution") and len(done.stderr.splitlines()) == 1   # its log only
    assert (tmp_path / "fsc" / "fsc.csv").exists()                 # the outputs were written before the print
