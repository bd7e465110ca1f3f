"""Documents that cannot go stale: the numbers of README.md and the shipped card are their rendering from
bench/results/*.json and the checkpoint's own files (`scripts/render_docs.py`), and every ```python block of the
README and the card runs as written, in a fresh interpreter in an empty folder (the Hub card template's blocks run
in tests/test_remote_code.py, on a release pushed to the test Hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import render_docs
from tests import snippets

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = {"README.md": ROOT / "README.md", "default_model/README.md": render_docs.CARD}
SNIPPETS = [s for name, path in DOCUMENTS.items() for s in snippets.python_blocks(path.read_text(), name)]


def test_documents_are_their_rendering():
    stale = [str(path) for path, (committed, rendered) in render_docs.documents().items() if committed != rendered]
    assert not stale, f"run `python scripts/render_docs.py`: {stale} differ from what their sources say"


def test_the_readme_renders_every_benchmark_topic():
    readme = (ROOT / "README.md").read_text()
    for topic in render_docs.BENCHMARK_ROWS:
        assert f"| {topic} | " in readme, topic
    assert "| `default` |" in readme and "| `paper` |" in readme


def test_no_table_has_an_empty_cell():
    """A blank cell reads as a missing number: every table row of the README, the cards and the Space README says
    something in each cell ("not given", "-")."""
    for path in [*DOCUMENTS.values(), ROOT / "model_card.md", ROOT / "space" / "README.md"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("|") and line.rstrip().endswith("|"):
                cells = [cell.strip() for cell in line.strip()[1:-1].split("|")]
                assert all(cells), f"{path.name}:{number} has an empty cell: {line}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return snippets.media_folder(tmp_path_factory.mktemp("snippets"))


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_runs_as_written(snippet, folder):
    if snippet.skip:
        pytest.skip(snippet.skip)
    proc = snippets.run(snippet, folder)
    assert proc.returncode == 0, f"{snippet.name}:\n{snippet.code}\n{proc.stderr[-3000:]}"
