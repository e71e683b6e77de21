"""Shared fixtures: the notebook's definitions, executed into a namespace, and the repository paths.

Tests never copy the notebook's code: they run its `parameters` and `defs` cells (the cells that only import
and define) and use what those cells define, or they execute the whole notebook with papermill.
"""
import json
import sys
import types
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "DL_HW2_StudentID.ipynb"
DATA_DIR = REPO / "data"


def code_cells(tag=None):
    """Source of the notebook's code cells, optionally only those carrying `tag`."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return ["".join(c["source"]) for c in cells
            if c["cell_type"] == "code" and (tag is None or tag in c.get("metadata", {}).get("tags", []))]


def notebook_module(**parameters):
    """Run the parameters cell, apply overrides, then every `defs` cell, as a module named `hw2_notebook`."""
    module = types.ModuleType("hw2_notebook")
    sys.modules[module.__name__] = module  # so that its classes pickle like any module's
    exec(compile(code_cells("parameters")[0], "<parameters cell>", "exec"), module.__dict__)
    module.__dict__.update(parameters)
    for i, source in enumerate(code_cells("defs")):
        exec(compile(source, f"<defs cell {i}>", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="session")
def nb():
    return notebook_module(DEVICE="cpu")


@pytest.fixture(scope="session")
def cifar_dir():
    if not (DATA_DIR / "cifar-10-batches-py").is_dir():
        pytest.fail(f"CIFAR-10 is missing: link or copy cifar-10-batches-py into {DATA_DIR} "
                    "(.ci/run links ../shared/data/cifar-10-batches-py there)")
    return DATA_DIR
