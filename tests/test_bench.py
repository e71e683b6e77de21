"""The benchmark scripts' own logic: override parsing, saving float weights, level entropy, the corruption suite."""
import json

import pytest
import torch

from bench.bench import parse_override, with_float_weights_saved
from bench.filter_bits import entropy_bits
from bench.robustness import BLIND, CORRUPTIONS, HELD_OUT, TUNE


def test_parse_override():
    assert parse_override("EPOCHS=3") == ("EPOCHS", 3)
    assert parse_override("TRAIN_SUBSET=None") == ("TRAIN_SUBSET", None)
    assert parse_override("DEVICE=cuda") == ("DEVICE", "cuda")
    with pytest.raises(Exception, match="KEY=VALUE"):
        parse_override("EPOCHS")


def test_the_float_weights_are_saved_before_the_rounding_cell(tmp_path):
    from tools.notebook import NOTEBOOK
    cells = json.loads(with_float_weights_saved(NOTEBOOK, tmp_path / "copy.ipynb").read_text())["cells"]
    ids = [cell.get("id") for cell in cells]
    export = next(i for i, cell in enumerate(cells) if "export" in cell.get("metadata", {}).get("tags", []))
    assert ids.index("bench-save-float") + 1 == export
    assert "stored_state_dict(model)" in "".join(cells[export]["source"])  # the export cell still rounds the weights
    compile("".join(cells[ids.index("bench-save-float")]["source"]), "saving", "exec")


def test_entropy_of_levels():
    assert entropy_bits([torch.tensor([-1, 0, 1, 2], dtype=torch.int8)]) == pytest.approx(2.0)
    assert entropy_bits([torch.zeros(5, dtype=torch.int8), torch.zeros(3, dtype=torch.int8)]) == 0.0


def test_halves_split_the_suite():
    assert set(TUNE) | set(HELD_OUT) | set(BLIND) == set(CORRUPTIONS)
    assert len(set(TUNE) | set(HELD_OUT) | set(BLIND)) == len(TUNE) + len(HELD_OUT) + len(BLIND)
    assert len(CORRUPTIONS) >= 8 and all(len(levels) == 5 for _, levels in CORRUPTIONS.values())


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_keeps_shape_and_grows_with_severity(name):
    corrupt, levels = CORRUPTIONS[name]
    x = torch.rand(1, 3, 32, 32).expand(8, -1, -1, -1) * 0.8 + 0.1
    changes = []
    for level in levels:
        y = corrupt(x, level, torch.Generator().manual_seed(0)).clamp(0, 1)
        assert y.shape == x.shape and y.dtype == torch.float32
        changes.append((y - x).abs().mean().item())
    assert changes[0] > 0
    if name != "saturate":  # saturate goes from desaturated to oversaturated by design
        assert changes[-1] > changes[0]


def test_natural_shift_set_loads_as_cifar_labelled_images():
    from bench.robustness import NATURAL, load_natural
    if not NATURAL.is_file():
        pytest.skip(f"{NATURAL} is not here")
    images, labels = load_natural()
    assert images.shape == (6945, 3, 32, 32) and images.dtype == torch.uint8
    assert sorted(labels.unique().tolist()) == [1, 2, 3, 5, 6, 8, 9]  # automobile, bird, cat, dog, frog, ship, truck


def test_sweeps_never_score_the_blind_corruptions():
    import sys
    sys.path.insert(0, "bench")
    from sweep import RobustSuite
    suite = RobustSuite(torch.rand(4, 3, 32, 32).mul(255).to(torch.uint8), torch.zeros(4, dtype=torch.int64), "cpu")
    scored = {key[0] for key in suite.batches if isinstance(key, tuple)}
    assert scored == set(TUNE) | set(HELD_OUT) and not scored & set(BLIND)


def test_the_results_file_has_the_columns_bench_writes():
    from bench.bench import FIELDS, RESULTS
    assert RESULTS.open().readline().strip() == ",".join(FIELDS)


def test_every_sweep_plan_names_only_notebook_parameters():
    import json
    import sys
    sys.path.insert(0, "bench")
    from sweep import Notebook
    from tools.notebook import NOTEBOOK, REPO
    notebook = Notebook(NOTEBOOK)
    plans = sorted((REPO / "bench" / "plans").glob("*.json"))
    assert plans
    for plan in plans:
        for entry in json.loads(plan.read_text()):
            assert entry["seeds"] and entry["name"]
            notebook.configure(**entry["params"])  # raises KeyError on a misspelt parameter
            notebook.module.bank_bits("stage1.widen.conv.weight", notebook.module.FILTER_BITS)  # a valid width


def test_the_development_set_is_scored_whatever_widths_the_pt_was_written_with(tmp_path, monkeypatch):
    import bench.bench as bench
    from tools.notebook import definitions
    widths = {"": 3, "stage1.widen": 6}  # not the notebook's FILTER_BITS: the .pt carries its own widths
    nb = definitions(DEVICE="cpu", FILTER_BITS=widths)
    torch.manual_seed(0)
    nb.save_submission(nb.myResNet(), tmp_path / "made.pt")
    images, labels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([1, 2, 3, 5])
    monkeypatch.setattr(bench, "load_natural", lambda path: (images, labels))
    written_with = bench.natural_accuracy(tmp_path / "made.pt", {"FILTER_BITS": widths})
    assert 0 <= written_with <= 1 and bench.natural_accuracy(tmp_path / "made.pt", {}) == written_with
