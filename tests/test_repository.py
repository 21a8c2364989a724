"""Repository hygiene: lint, and lecture notebooks committed without outputs or widget state."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
RUFF = Path(sys.executable).with_name("ruff")


def test_ruff_is_clean_over_code_and_notebooks():
    targets = [p for p in ("utils", "tools", "tests", "lectures", "solutions", "templates", "hub") if (ROOT / p).exists()]
    result = subprocess.run([str(RUFF), "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff found problems (run `make lint`):\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_is_committed_without_outputs_or_widget_state(path):
    nb = json.loads(path.read_text())
    with_outputs = [i for i, c in enumerate(nb["cells"]) if c.get("outputs")]
    counted = [i for i, c in enumerate(nb["cells"]) if c.get("execution_count") is not None]
    assert not with_outputs, f"{path.name}: cells {with_outputs} carry outputs; clear them before committing"
    assert not counted, f"{path.name}: cells {counted} carry execution counts; clear them before committing"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state in the metadata; remove it"


def test_there_is_a_lecture_per_committed_week():
    assert LECTURES, "lectures/ holds no notebook"
    numbers = [p.name[:2] for p in LECTURES]
    assert all(n.isdigit() for n in numbers), f"lecture files are named NN_topic.ipynb, got {numbers}"
