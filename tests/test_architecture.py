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
