"""The whole notebook, executed by papermill on the CPU with small subsets, into a temporary OUTPUT_DIR."""
import json
import shutil
import zipfile

import nbformat
import pandas as pd
import papermill
import pytest
import torch

from tools.notebook import NOTEBOOK, REPO

SMOKE = dict(TRAIN_SUBSET=1000, TEST_SUBSET=1000, EPOCHS=1, BATCH_SIZE=250, COMPILE=False, DOWNLOAD=False,
             DEVICE="cpu")


def run_notebook(output_dir, data_dir, **parameters):
    papermill.execute_notebook(str(NOTEBOOK), str(output_dir / f"executed_{parameters['TRAIN']}.ipynb"),
                               parameters=dict(SMOKE, OUTPUT_DIR=str(output_dir), DATA_DIR=str(data_dir),
                                               **parameters),
                               cwd=str(REPO), kernel_name="python3", progress_bar=False)
    return json.loads((output_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cifar_dir):
    output_dir = tmp_path_factory.mktemp("smoke")
    return output_dir, run_notebook(output_dir, cifar_dir, TRAIN=True)


def test_writes_every_output(trained):
    output_dir, metrics = trained
    assert sorted(p.name for p in output_dir.iterdir() if not p.name.startswith("executed")) == [
        "StudentID_HW2.zip", "StudentID_submission.csv", "StudentID_submission.pt", "metrics.json"]
    assert not [p for p in output_dir.iterdir() if p.name.endswith(".tmp")]
    with zipfile.ZipFile(output_dir / "StudentID_HW2.zip") as archive:
        assert sorted(archive.namelist()) == [
            "DL_HW2_StudentID.ipynb", "StudentID_submission.csv", "StudentID_submission.pt"]
    assert metrics["test_images"] == 1000 and metrics["train_images"] == 1000 and metrics["epochs"] == 1
    assert metrics["pt_bytes"] == (output_dir / "StudentID_submission.pt").stat().st_size < 6e6
    assert len(metrics["history"]) == 1 and metrics["train_seconds"] > 0


def test_pt_reloads_and_reproduces_accuracy_and_csv(trained, nb, cifar_dir):
    output_dir, metrics = trained
    state = torch.load(output_dir / "StudentID_submission.pt")  # weights_only=True, the default
    model = nb.myResNet()
    model.load_state_dict(state)
    _, _, test_images, test_labels = nb.load_cifar10(cifar_dir)
    predictions = nb.predict(model, test_images[:1000])
    assert nb.accuracy(predictions, test_labels[:1000]) == metrics["test_accuracy"]
    csv = pd.read_csv(output_dir / "StudentID_submission.csv")
    assert list(csv.columns) == ["id", "label"]
    assert csv["id"].tolist() == list(range(1000))
    assert csv["label"].tolist() == predictions.tolist()


def test_default_run_with_a_pt_evaluates_it_and_reproduces_the_trained_run(trained, cifar_dir):
    output_dir, metrics = trained
    csv_before = (output_dir / "StudentID_submission.csv").read_bytes()
    pt_before = (output_dir / "StudentID_submission.pt").read_bytes()
    again = run_notebook(output_dir, cifar_dir, TRAIN="auto")
    assert again["test_accuracy"] == metrics["test_accuracy"] and again["pt_sha256"] == metrics["pt_sha256"]
    # it did not train, and kept the record of the run that made the .pt
    assert {k: again[k] for k in ("train_seconds", "history", "seed")} == \
        {k: metrics[k] for k in ("train_seconds", "history", "seed")}
    assert (output_dir / "StudentID_submission.csv").read_bytes() == csv_before
    assert (output_dir / "StudentID_submission.pt").read_bytes() == pt_before


def test_without_data_the_model_is_loaded_before_the_error(trained, tmp_path):
    output_dir, _ = trained
    shutil.copy(output_dir / "StudentID_submission.pt", tmp_path)
    with pytest.raises(papermill.PapermillExecutionError) as info:
        run_notebook(tmp_path, tmp_path / "no-data", TRAIN="auto")
    assert info.value.ename == "FileNotFoundError" and "CIFAR-10 not found" in info.value.evalue
    executed = nbformat.read(tmp_path / "executed_auto.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "evaluating the submitted weights" in printed and "into a fresh myResNet()" in printed
    assert (tmp_path / "StudentID_submission.pt").read_bytes() == (output_dir / "StudentID_submission.pt").read_bytes()
