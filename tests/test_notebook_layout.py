"""The notebook as a grader reads it: Parts 4-7 together and first, a short network, cells and lines that fit in a head."""
import ast
import json
import logging
import re
import subprocess
import sys

import papermill

from tools.notebook import NOTEBOOK, code_cells

CELLS = json.loads(NOTEBOOK.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def test_parts_4_to_7_are_consecutive_sections():
    headings = [line for cell in CELLS if cell["cell_type"] == "markdown"
                for line in source(cell).splitlines() if line.startswith("## ")]
    parts = [i for i, h in enumerate(headings) if re.match(r"## Part [4-7]\b", h)]
    assert [headings[i][:9] for i in parts] == ["## Part 4", "## Part 5", "## Part 6", "## Part 7"]
    assert parts == list(range(parts[0], parts[0] + 4)), headings


def test_the_network_comes_early_and_its_forward_is_short():
    lines = [source(cell).splitlines() for cell in CELLS if cell["cell_type"] == "code"]
    before = 0
    for cell_lines in lines:
        if any(line.startswith("class myResNet(") for line in cell_lines):
            before += next(i for i, line in enumerate(cell_lines) if line.startswith("class myResNet("))
            break
        before += len(cell_lines)
    assert before < 0.4 * sum(map(len, lines)), f"class myResNet starts at code line {before}"
    part7 = next(s for s in code_cells("part7") if "class myResNet(" in s)
    network = next(n for n in ast.walk(ast.parse(part7)) if isinstance(n, ast.ClassDef) and n.name == "myResNet")
    forward = next(n for n in network.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    assert forward.end_lineno - forward.lineno + 1 <= 6
    assert len(part7.splitlines()) <= 70


def test_the_stage_table_names_the_parts(nb):
    table = nb.stage_table(nb.myResNet())
    assert table["part"].tolist() == ["stem", "stage1", "stage2", "stage3", "head", "pool"]
    assert table["output (C, H, W)"].iloc[-2] == (10, 3, 3)  # the classes are scored at every position
    assert table["parameters"].sum() == nb.count_parameters(nb.myResNet())
    assert table["output (C, H, W)"].iloc[-1] == (10,)


def test_cells_and_lines_are_short():
    for i, cell in enumerate(CELLS):
        text = source(cell)
        long_lines = [line for line in text.splitlines() if len(line) > 120]
        assert not long_lines, f"cell {i}: {len(long_lines)} lines over 120 characters, e.g. {long_lines[0][:60]}…"
        if cell["cell_type"] == "code":
            assert len(text.splitlines()) <= 80, f"cell {i}: {len(text.splitlines())} lines of code"
        else:
            assert len(text.split()) <= 250, f"cell {i}: {len(text.split())} words of markdown"


def test_papermill_reads_every_parameter(caplog):
    with caplog.at_level(logging.WARNING):
        found = papermill.inspect_notebook(str(NOTEBOOK))
    assert not [r for r in caplog.records if "parse" in r.getMessage()], caplog.text
    assigned = [t.id for node in ast.parse(code_cells("parameters")[0]).body if isinstance(node, ast.Assign)
                for t in node.targets]
    assert sorted(found) == sorted(assigned)


PARTS_ALONE = """
import torch
model = myResNet()
model.train()
images = torch.rand(8, 3, 32, 32)  # a training batch: [0, 1] RGB
logits = model(images)
torch.nn.functional.cross_entropy(logits, torch.arange(8) % 10).backward()
assert logits.shape == (8, 10)
assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
copy = myResNet()
copy.load_state_dict(model.state_dict())  # a float state_dict loads without the storage section
model.eval(), copy.eval()
with torch.no_grad():
    assert torch.equal(copy.logits(images), model.logits(images))  # the bare network, in eval mode
print(sum(p.numel() for p in model.parameters()))
"""


def test_parts_4_to_7_build_and_train_the_network_alone(tmp_path):
    """The imports and the Part 4-7 cells, nothing else (no parameters cell, nothing defined later), in a fresh
    interpreter: myResNet() builds, a training step's forward and backward pass run, a float state_dict loads
    and the bare network scores in eval mode."""
    cells = [source for source, tags in tagged_code_cells() if "imports" in tags
             or any(f"part{i}" in tags for i in (4, 5, 6, 7))]
    script = tmp_path / "parts.py"
    script.write_text("\n\n".join(cells) + "\n" + PARTS_ALONE)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == nb_parameters()


def nb_parameters():
    from tools.notebook import definitions
    nb = definitions(DEVICE="cpu")
    return nb.count_parameters(nb.myResNet())


def tagged_code_cells():
    return [(source(cell), cell.get("metadata", {}).get("tags", [])) for cell in CELLS if cell["cell_type"] == "code"]


def test_the_test_time_section_is_at_most_150_code_lines():
    lines = [line for text, tags in tagged_code_cells() if "testtime" in tags
             for line in text.splitlines() if line.strip()]
    assert 0 < len(lines) <= 150, f"{len(lines)} non-blank lines"


def test_the_notebook_names_no_repository_file_and_imports_no_compression_library():
    text = "".join(source(cell) for cell in CELLS)
    assert "bench/" not in text and "tools/" not in text and "tests/" not in text
    imported = {alias.name.split(".")[0] for text, _ in tagged_code_cells() for node in ast.walk(ast.parse(text))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"zlib", "gzip", "bz2", "lzma", "zstandard", "brotli", "lz4", "snappy"}, imported
    assert not re.search(r"ZIP_(DEFLATED|BZIP2|LZMA)", text)  # the course's zip only bundles the files
