"""Shared fixtures. Tests never copy the notebook's code: they use what its `defs` cells define
(tools.notebook.definitions), or execute the whole notebook with papermill."""
import matplotlib
import pytest

from tools.notebook import REPO, definitions

matplotlib.use("Agg")

DATA_DIR = REPO / "data"


@pytest.fixture(scope="session")
def nb():
    return definitions(DEVICE="cpu")


@pytest.fixture(scope="session")
def cifar_dir():
    if not (DATA_DIR / "cifar-10-batches-py").is_dir():
        pytest.fail(f"CIFAR-10 is missing: link or copy cifar-10-batches-py into {DATA_DIR} "
                    "(.ci/run links ../shared/data/cifar-10-batches-py there)")
    return DATA_DIR
