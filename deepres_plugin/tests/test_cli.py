"""The ``deepres`` command: end-to-end runs, exit codes, one-line errors, no partial files."""
import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core.dataset import MANIFEST_FILE, load_split
from deepres_plugin.core.mrc import read_map

PROTEIN = "BM5_1PPE_l_u.pdb.gz"


def run_cli(*args):
    return cli.main([str(a) for a in args])


def test_simulate_writes_map_and_mask_that_overlay_the_model(data_dir, tmp_path):
    status = run_cli("simulate", data_dir / PROTEIN, "--sampling", "1.0", "--resolution", "4.0", "--noise", "0.05",
                     "--out", tmp_path / "map.mrc", "--mask-out", tmp_path / "mask.mrc")
    assert status == 0
    volume, geometry = read_map(tmp_path / "map.mrc")
    mask, mask_geometry = read_map(tmp_path / "mask.mrc")
    assert geometry == mask_geometry and geometry.voxel_size == 1.0
    assert volume.shape == mask.shape and set(np.unique(mask)) == {0.0, 1.0}
    from deepres_plugin.core.simulate import atom_positions, read_model

    atoms_xyz = atom_positions(read_model(data_dir / PROTEIN))
    index_zyx = np.rint((atoms_xyz - np.array(geometry.origin)) / geometry.voxel_size)[:, ::-1].astype(int)
    assert mask[tuple(index_zyx.T)].all()                             # every atom inside the mask
    assert volume[tuple(index_zyx.T)].mean() > 0.3                    # and on density
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.mrc", "mask.mrc"]


@pytest.mark.parametrize("args, message", [
    (["simulate", "{data}/absent.pdb", "--sampling", "1", "--out", "{tmp}/map.mrc"], "no such file"),
    (["simulate", "{data}/" + PROTEIN, "--sampling", "1", "--resolution", "1.2", "--out", "{tmp}/map.mrc",
      "--mask-out", "{tmp}/mask.mrc"], "finer than Nyquist"),
    (["simulate", "{data}/" + PROTEIN, "--sampling", "0", "--out", "{tmp}/map.mrc"], "--sampling: must be more than 0 Å/px"),
    (["simulate", "{data}/" + PROTEIN, "--sampling", "1", "--noise", "-1", "--out", "{tmp}/map.mrc"], "--noise"),
    (["simulate", "{data}/" + PROTEIN, "--sampling", "1", "--out", "{tmp}/map.mrc", "--mask-out", "{tmp}/map.mrc"],
     "same file"),
    (["simulate", "{data}/" + PROTEIN, "--sampling", "1", "--out", "{tmp}/missing/map.mrc"], "does not exist"),
    (["dataset", "{tmp}", "--range", "wide", "--out", "{tmp}/data"], "no PDB/mmCIF"),
])
def test_user_errors_give_one_line_and_leave_nothing(data_dir, tmp_path, capsys, args, message):
    status = run_cli(*[a.format(data=data_dir, tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR
    assert err.count("\n") == 0 and message in err and err.startswith("deepres ")
    assert "Traceback" not in err
    assert not any(p.suffix == ".mrc" or p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_dataset_command_end_to_end(data_dir, tmp_path):
    status = run_cli("dataset", data_dir, "--range", "high", "--out", tmp_path / "data", "--workers", "2",
                     "--max-structures", "2", "--labels-per-structure", "3", "--boxes-per-label", "10",
                     "--no-progress", "--val-fraction", "0")
    assert status == 0
    manifest = json.loads((tmp_path / "data" / MANIFEST_FILE).read_text())
    assert manifest["range"]["voxel_size"] == 0.5 and manifest["counts"]["train"]["boxes"] == 60
    boxes, labels = load_split(tmp_path / "data", "train")
    assert boxes.shape == (60, 13, 13, 13) and 1.5 <= labels.min() and labels.max() <= 6.0


def test_console_script_help_runs_without_scipion():
    """`deepres --help` in a fresh interpreter, and the core never imports Scipion."""
    code = ("import sys; from deepres_plugin import cli; import deepres_plugin.core.dataset;"
            "cli.build_parser(); print('pyworkflow' in sys.modules or 'pwem' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    help_text = subprocess.run([sys.executable, "-m", "deepres_plugin.cli", "simulate", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--sampling" in help_text and "Example usage" in help_text


def test_command_list_shows_each_one_line_help_whole():
    """`deepres --help` lists every subcommand with its whole one-line help: a sentence (the
    first paragraph of the module docstring) that argparse may wrap but does not cut."""
    import importlib

    help_text = subprocess.run([sys.executable, "-m", "deepres_plugin.cli", "--help"],
                               capture_output=True, text=True, check=True).stdout
    listed = " ".join(help_text.split())                       # argparse's line wrapping undone
    for name, module_name in cli.COMMANDS.items():
        doc = importlib.import_module(f"deepres_plugin.commands.{module_name}").__doc__
        summary = " ".join(doc.strip().split("\n\n")[0].split())
        assert summary.endswith(".") and summary[0].isupper() and len(summary) <= 100, (name, summary)
        assert f" {name} {summary} " in f" {listed} ", (name, summary)


def _square(task):
    logging.getLogger("deepres_plugin.tests").info("task %d done", task)
    return task * task


def test_progress_in_a_log_file_is_one_final_line_and_the_log_lines_once(tmp_path, monkeypatch):
    """stderr to a file (a log): no bar refreshes (tqdm's carriage returns) and no bar redrawn
    under every log line (tqdm's logging redirection), but the log lines, each once, and one
    final line for the bar."""
    from deepres_plugin.core.cluster import ClusterOptions, map_tasks

    log = tmp_path / "run.log"
    with log.open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        cli.configure_logging(verbose=False)                   # the command line's handler, on this stderr
        try:
            results = list(map_tasks(_square, [1, 2, 3], ["a", "b", "c"], ClusterOptions(workers=1),
                                     progress=True, description="squares", unit="task"))
        finally:
            cli.logger.handlers.clear()
    assert results == [1, 4, 9]
    lines = log.read_text().split("\n")
    assert "\r" not in log.read_text()
    assert [line for line in lines if line.startswith("INFO")] == [f"INFO: task {i} done" for i in (1, 2, 3)]
    bars = [line for line in lines if line.startswith("squares")]
    assert len(bars) == 1 and "100%" in bars[0] and "3/3" in bars[0], lines


def test_predict_logged_to_a_file_writes_one_progress_line(data_dir, untrained_models, tmp_path):
    """`deepres predict` with its output going to a log file: one line for its progress bar."""
    with (tmp_path / "predict.log").open("w") as log:
        subprocess.run([sys.executable, "-m", "deepres_plugin.cli", "predict", str(data_dir / "example_map.mrc"),
                        "--model", str(untrained_models["deepres", "wide"]), "--out", str(tmp_path / "out")],
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    text = (tmp_path / "predict.log").read_text()
    bars = [line for line in text.splitlines() if line.startswith("deepres predict:")]
    assert "\r" not in text and len(bars) == 1 and "100%" in bars[0], text


def test_a_missing_computation_says_how_to_install_it(tmp_path, data_dir):
    """In a Python without TensorFlow (the Scipion side of two environments), `deepres predict`
    ends in one line naming the extra to install, not a traceback."""
    import os
    import subprocess
    import sys

    poison = tmp_path / "poison" / "tensorflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'tensorflow'\", "
                                        "name='tensorflow')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "poison")}
    result = subprocess.run([sys.executable, "-m", "deepres_plugin.cli", "predict", str(data_dir / "example_map.mrc"),
                             "--out", str(tmp_path / "out"), "--no-progress"], env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"deepres predict: error: tensorflow is not installed in this Python ({sys.executable}); install the "
        "computation with: pip install 'scipion-em-deepres[compute]'")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
