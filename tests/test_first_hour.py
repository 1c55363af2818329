"""A newcomer's first hour, as a script: README's commands run as written (from a fresh folder)
and print what README says they print. (README's Python blocks run in tests/test_readme.py.)"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
EXE = Path(sys.executable).parent / "cvx-fenchel"


def run(*args, cwd):
    exe = str(EXE) if EXE.exists() else "cvx-fenchel"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_readme_main_command_trains_and_prints_the_documented_accuracy(tmp_path):
    first = README.split("```bash", 1)[1].split("```", 1)[0]
    assert first.strip().endswith("cvx-fenchel train"), "README's first command should end in the main command"
    documented = re.search(r"final test accuracy \*\*(0\.\d{4})\*\* on the subset", README).group(1)
    p = run("train", cwd=tmp_path)  # as written: no arguments, in a fresh folder
    assert p.returncode == 0, p.stderr[-2000:]
    printed = float(re.search(r"final test accuracy: (0\.\d{4})", p.stdout).group(1))
    # float32 BLAS kernels differ between CPUs: a few of the 2,000 test images may flip
    assert abs(printed - float(documented)) <= 0.005, (printed, documented)
    assert (tmp_path / "runs/train/history.json").exists()
    again = run("train", "--quiet", cwd=tmp_path)  # a second run never clobbers the first
    assert again.returncode == 0 and "history in runs/train-2" in again.stdout


def test_readme_commands_info_dry_run_and_quick_verify(tmp_path):
    p = run("info", cwd=tmp_path)
    assert p.returncode == 0 and "cvxpy" in p.stdout and "CuPy" in p.stdout
    p = run("reproduce", "fig2", "--dry-run", "--no-probe", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.count("cvx-fenchel train --model") == 3
    p = run("verify", "--quick", "--out", str(tmp_path / "v"), cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("PASSED")
    assert "WARNING" not in p.stdout + p.stderr  # solver noise goes into the report


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["train", "--model", "sgd", "--lam", "1"], "--lam applies to --model fenchel only"),
])
def test_bad_flags_are_one_line_errors(args, message, tmp_path):
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
