"""The package's structure rules: the import contract of pyproject.toml (layers, and who may
import ``verification``) and the size limit of a source file."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contract_holds():
    """``lint-imports`` (import-linter) checks the layers backend -> activations/maps/losses/
    solvers -> subproblems -> network/trainer -> baselines/estimator -> experiments/reproduce/cli,
    and that nothing below the command line imports ``verification``."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports is not installed (it comes with the 'test' extra: import-linter)")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_source_file_above_600_lines():
    too_long = {str(p.relative_to(ROOT)): n for p in (ROOT / "cvx_fenchel").rglob("*.py")
                if (n := len(p.read_text().splitlines())) > 600}
    assert not too_long, f"split these modules (over 600 lines): {too_long}"


#: a tracked file above this is data or a run's output, not source (the embedded MNIST subset,
#: 2.0 MB, is the largest file the package needs)
MAX_TRACKED_BYTES = 3 * 1024 * 1024
#: what a run writes and must never be committed: a session whose commits held training
#: checkpoints (written again at every epoch) was refused for size and lost all its work
RUN_OUTPUT = ("checkpoints/", ".ckpt", ".pt", "/runs/")
#: the one place run outputs may be tracked: the small archive `cvx-fenchel report --archive`
#: writes (results, slim histories, the latest checkpoint of unfinished Fenchel runs), each
#: file at most 1 MB (cvx_fenchel.report.archive.MAX_FILE_BYTES)
ARCHIVE = "docs/results/runs/"
ARCHIVE_MAX_BYTES = 1_000_000


def test_no_run_output_or_large_file_is_tracked():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, check=True).stdout.split("\0")
    files = [f for f in files if f]
    big = {f: (ROOT / f).stat().st_size for f in files
           if (ROOT / f).is_file() and (ROOT / f).stat().st_size > MAX_TRACKED_BYTES}
    assert not big, f"files over {MAX_TRACKED_BYTES} bytes are tracked (keep run outputs out of git): {big}"
    archived = [f for f in files if f.startswith(ARCHIVE)]  # cvx_fenchel.report.archive
    outputs = [f for f in files if any(s in "/" + f for s in RUN_OUTPUT) and f not in archived]
    assert not outputs, f"run outputs are tracked (checkpoints, weights, runs/): {outputs[:10]}"
    big = {f: (ROOT / f).stat().st_size for f in archived
           if (ROOT / f).is_file() and (ROOT / f).stat().st_size > ARCHIVE_MAX_BYTES}
    assert not big, f"archived run files over {ARCHIVE_MAX_BYTES} bytes are tracked: {big}"
    assert not [f for f in archived if f.endswith(".png")], "the archive holds no plots"
