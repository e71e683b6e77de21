"""Whether the notebook still computes what it computed at another commit, bit for bit: forward() of the committed
.pt on inputs that take every test-time path, and a short training run (compiled and eager), tensor by tensor.

    python bench/same_as.py 2775413        # the working tree's notebook against the one at that commit

For a change that should move nothing (a refactor, a renaming): every line must say "equal". The training run is
2 epochs of 8 steps on the first 4,096 training images, so lookahead, both optimizers and the schedule all act.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import NOTEBOOK, REPO, definitions  # noqa: E402

SHORT_RUN = dict(EPOCHS=2, BATCH_SIZE=512)


def test_time_inputs(images):
    """A batch for each path of forward(): formats, sizes, grayscale, and each repair's trigger."""
    x = images.float() / 255
    generator = torch.Generator().manual_seed(0)
    mean, u = x.mean(dim=(1, 2, 3), keepdim=True), torch.rand(x.shape, generator=generator)
    return {"[0, 1] floats": x, "uint8": images, "Normalize(CIFAR-10)": (x - 0.48) / 0.25,
            "bilinear 64 px": F.interpolate(x, size=64, mode="bilinear"), "grayscale": x.mean(1, keepdim=True),
            "Gaussian noise": (x + 0.08 * torch.randn(x.shape, generator=generator)).clamp(0, 1),
            "salt and pepper": torch.where(u < 0.02, 0.0, torch.where(u > 0.98, 1.0, x)),
            "low contrast": mean + (x - mean) * 0.2, "nearest 64 px": F.interpolate(x, size=64, mode="nearest")}


def short_run(nb, images, labels, curve, compile_model):
    torch.manual_seed(2)
    model = nb.myResNet().to(memory_format=torch.channels_last)
    if hasattr(nb, "Recipe"):  # notebooks up to 2775413 passed the recipe and the run's switches to train()
        history = nb.train(model, images, labels, nb.Recipe(), compile_model=compile_model, amp="auto", curve=curve)
    else:
        history = nb.train(model, images, labels, curve)
    return list(model.state_dict().values()), [{k: v for k, v in h.items() if "seconds" not in k} for h in history]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".ipynb", delete=False) as old_notebook:
        old_notebook.write(subprocess.run(["git", "show", f"{args.commit}:{NOTEBOOK.name}"], cwd=REPO, check=True,
                                          capture_output=True, text=True).stdout)
    versions = {"old": old_notebook.name, "new": NOTEBOOK}
    nbs = {k: definitions(path, DEVICE="cpu") for k, path in versions.items()}
    _, _, test_images, test_labels = nbs["new"].load_cifar10(args.data_dir)
    pt = REPO / "StudentID_submission.pt"
    models = {k: nb.load_submission(pt) for k, nb in nbs.items()}
    same = lambda a, b: "equal" if len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b)) else "DIFFERENT"
    print(f"{pt.name} loaded: {same(*[list(m.state_dict().values()) for m in models.values()])}")
    with torch.no_grad():
        for name, batch in test_time_inputs(test_images[:300]).items():
            print(f"forward, {name}: {same(*[[m(batch)] for m in models.values()])}")
    train_images, train_labels, _, _ = nbs["new"].load_cifar10(args.data_dir)
    curve = test_images[:500], test_labels[:500]
    for compile_model in (True, False):
        runs = [short_run(definitions(path, DEVICE="cpu", COMPILE=compile_model, **SHORT_RUN), train_images[:4096],
                          train_labels[:4096], curve, compile_model) for path in versions.values()]
        kind = "compiled" if compile_model else "eager"
        print(f"training ({kind}), weights: {same(runs[0][0], runs[1][0])}, "
              f"history: {'equal' if runs[0][1] == runs[1][1] else 'DIFFERENT'}")
    Path(old_notebook.name).unlink()


if __name__ == "__main__":
    main()
