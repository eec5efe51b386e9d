"""docs/lecture.ipynb is stored without outputs and runs from top to bottom, as a reader runs it."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).parents[1] / "docs" / "lecture.ipynb"
# Only a hung cell fails on time: the whole notebook takes about a minute on 2 idle cores (issue
# 23 asks for at most 3 in CI; timing is not asserted), but one cell took over 180 s on 2 cores
# shared with three other CPU-bound jobs.
CELL_TIMEOUT_S = 900


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, "clear the notebook's outputs before committing it"
            assert cell.execution_count is None


@pytest.mark.hep
def test_notebook_runs(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("pythia8mc")  # section 5 simulates jets
    pytest.importorskip("fastjet")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error

    # A warning inside the kernel never reaches pytest's filterwarnings: look for it here.
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("name") == "stderr":
                pytest.fail(f"cell {index} wrote to stderr:\n{output['text']}")
