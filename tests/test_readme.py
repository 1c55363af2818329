"""README's Python code blocks run as written (so the documented API cannot drift)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_python_example():
    assert _python_blocks(), "README.md should show the Python API"


@pytest.mark.parametrize("i", range(len(_python_blocks())))
def test_readme_python_block_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_blocks()[i], f"README.md python block {i}", "exec"), {"__name__": "__readme__"})
