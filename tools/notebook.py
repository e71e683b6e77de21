"""Use the notebook's own code from scripts and tests, without copying it.

`definitions()` runs the notebook's `parameters` cell, applies overrides, then every cell tagged `defs` (the
cells that only import and define), inside a fresh module.
"""
import json
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "DL_HW2_StudentID.ipynb"


def code_cells(tag=None, notebook=NOTEBOOK):
    """Source of the notebook's code cells, optionally only those carrying `tag`."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return ["".join(c["source"]) for c in cells
            if c["cell_type"] == "code" and (tag is None or tag in c.get("metadata", {}).get("tags", []))]


def definitions(notebook=NOTEBOOK, **parameters):
    """The notebook's parameters (with overrides) and definitions, as a module named `hw2_notebook` (the first
    time; then `hw2_notebook_2`, `_3`, …, so that each module's classes keep pickling like any module's)."""
    copies = sum(1 for name in sys.modules if name == "hw2_notebook" or name.startswith("hw2_notebook_"))
    module = types.ModuleType("hw2_notebook" + (f"_{copies + 1}" if copies else ""))
    sys.modules[module.__name__] = module
    exec(compile(code_cells("parameters", notebook)[0], "<parameters cell>", "exec"), module.__dict__)
    module.__dict__.update(parameters)
    for i, source in enumerate(code_cells("defs", notebook)):
        exec(compile(source, f"<defs cell {i}>", "exec"), module.__dict__)
    return module
