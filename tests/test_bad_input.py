"""Bad input gets an error that says what is wrong and what to do."""
import pickle

import numpy as np
import pytest
import torch

from tools.notebook import definitions


def write_fake_cifar(root, images_per_batch=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (images_per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, images_per_batch).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    return folder


def test_fake_dataset_loads(nb, tmp_path):
    write_fake_cifar(tmp_path)
    train_images, train_labels, test_images, test_labels = nb.load_cifar10(tmp_path)
    assert train_images.shape == (100, 3, 32, 32) and train_images.dtype == torch.uint8
    assert test_labels.shape == (20,) and test_labels.dtype == torch.int64


def test_missing_data_offline_says_where_to_put_it(nb, tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found") as info:
        nb.load_cifar10(tmp_path / "nowhere", download=False)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in str(info.value)
    assert "DATA_DIR" in str(info.value)


def test_truncated_batch_names_the_file(nb, tmp_path):
    folder = write_fake_cifar(tmp_path)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match="data_batch_3 is not a readable CIFAR-10 batch"):
        nb.load_cifar10(tmp_path)


def test_pt_of_another_architecture_is_a_clear_error(nb, tmp_path):
    other = nb.myResNet(widths=(16, 32, 64))
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match="does not hold weights for this notebook's myResNet") as info:
        nb.load_submission(path)
    assert "size mismatch" not in str(info.value)
    nb.save_submission(other, path)  # the stored (coded) form
    for load in (nb.load_submission, lambda pt: nb.myResNet().load_state_dict(torch.load(pt))):  # the grader's way
        with pytest.raises(ValueError, match="does not hold weights for this notebook's myResNet"):
            load(path)


def test_damaged_stored_weights_are_a_clear_error(nb, tmp_path):
    path = tmp_path / "damaged.pt"
    model = nb.myResNet()
    with torch.no_grad():
        for weight in nb.filter_banks(model).values():
            weight.normal_()
    stored = nb.stored_state_dict(model)
    coded = stored["stage3.filters.coded"].clone()
    coded[len(coded) // 2:] = 0  # a stream zeroed from its middle on
    torch.save(dict(stored, **{"stage3.filters.coded": coded}), path)
    with pytest.raises(ValueError, match="damaged"):
        nb.load_submission(path)
    with pytest.raises(ValueError, match="damaged"):
        nb.myResNet().load_state_dict(torch.load(path))  # the grader's way says the same
    tables = stored["stage2.filters.tables"].clone()
    tables[0] += 1  # a table that no longer sums to 2**PRECISION
    with pytest.raises(ValueError, match="damaged"):
        nb.myResNet().load_state_dict(dict(stored, **{"stage2.filters.tables": tables}))


def test_pickled_module_is_a_clear_error(nb, tmp_path):
    path = tmp_path / "module.pt"
    torch.save(nb.myResNet(), path)
    with pytest.raises(ValueError, match="not a state_dict"):
        nb.load_submission(path)


def test_missing_pt_says_how_to_make_it(nb, tmp_path):
    with pytest.raises(FileNotFoundError, match="TRAIN = True"):
        nb.load_submission(tmp_path / "absent.pt")


def test_failed_write_keeps_the_old_file(nb, tmp_path):
    target = tmp_path / "kept.csv"
    target.write_text("old")

    def failing_write(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        nb.atomic_write(target, failing_write)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["kept.csv"]


def test_non_finite_loss_stops_training():
    nb = definitions(DEVICE="cpu", EPOCHS=1, BATCH_SIZE=32, LR=float("inf"), COMPILE=False, AMP="off")
    model = nb.myResNet(widths=(8, 8, 8))
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    with pytest.raises(FloatingPointError, match="lower LR"):
        # an infinite step makes the weights non-finite for certain; 1e30 left some draws' loss huge but finite
        nb.train(model, images, labels)
