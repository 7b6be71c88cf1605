"""Executes notebooks/quickstart.ipynb end to end and checks the accuracies it prints."""

from __future__ import annotations

import pathlib
import re
import shutil

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
# The notebook reaches MLP 65.5 %, CNN 91.5 %, LSTM 84.5 % (seed 0, chance is 10 %).
MIN_ACCURACY = {"MLP": 50.0, "CNN": 75.0, "LSTM": 50.0}
ROW = re.compile(r"^(MLP|CNN|LSTM)\s.*?([\d.]+)%\s*$", re.MULTILINE)


def _stdout(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


@pytest.mark.slow(24)
def test_quickstart_runs_and_learns(tmp_path, monkeypatch):
    # A kernelspec of this interpreter, found first through JUPYTER_PATH, so the kernel runs in
    # the same environment whatever other "python3" kernels the machine has.
    kernelspec.write_kernel_spec(tmp_path / "jupyter" / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # The kernel's inline backend needs no display.
    copy = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    try:
        client.execute()  # Raises CellExecutionError on the first cell that fails.
    finally:
        nbformat.write(nb, copy)  # The executed copy stays in tmp_path for inspection.

    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert not [out for cell in code_cells for out in cell.outputs
                if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for cell in code_cells
               for out in cell.outputs), "no plot was rendered"
    table = _stdout(code_cells[-1])
    accuracy = {name: float(value) for name, value in ROW.findall(table)}
    assert set(accuracy) == set(MIN_ACCURACY), table
    for name, minimum in MIN_ACCURACY.items():
        assert accuracy[name] >= minimum, f"{name}: {accuracy[name]} % < {minimum} %\n{table}"
