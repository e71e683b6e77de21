"""Why the one-view test curve falls: the notebook's `train`, stopped after a few epochs of the full schedule, with
the network scored every few steps two ways on the first 2,000 test images (one view, no repairs):

- `moving`: batch norm with its moving statistics, as the notebook's test curve (and the .pt) sees it;
- `clean`: the same weights with each batch norm's statistics taken from 2,000 clean training images (the
  notebook's `statistics_of`).

If `clean` is steady where `moving` falls, the moving statistics (taken from augmented batches) are off; if both
fall, the weights themselves are.

    python bench/curve_probe.py --epochs 10 -p MUON_LR=0.10 > bench/results/curve-probe.txt
"""
import argparse
import ast
import contextlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import REPO, definitions  # noqa: E402


class Stop(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--epochs", type=int, default=10, help="epochs run of the full schedule")
    parser.add_argument("--every", type=int, default=3, help="probe every this many lookahead calls")
    parser.add_argument("--train-images", type=int, default=None, help="the first N only (smoke runs)")
    parser.add_argument("-p", action="append", default=[], metavar="NAME=VALUE", help="parameter override")
    args = parser.parse_args()
    overrides = {k: ast.literal_eval(v) for k, v in (p.split("=", 1) for p in args.p)}
    nb = definitions(DEVICE="cpu", **overrides)
    train_images, train_labels, test_images, test_labels = nb.load_cifar10(args.data_dir)
    curve = (test_images[:2000], test_labels[:2000])
    clean = train_images[torch.randperm(len(train_images), generator=torch.Generator().manual_seed(1))[:2000]]
    train_images, train_labels = train_images[:args.train_images], train_labels[:args.train_images]

    torch.manual_seed(nb.SEED)
    model = nb.myResNet().to(memory_format=torch.channels_last)
    steps_per_epoch = len(train_images) // nb.BATCH_SIZE
    calls = [0]
    rows = []

    def probe(epoch_end=False):
        moving = original_score(model, *curve)
        with fresh_statistics(model, clean):
            clean_score = original_score(model, *curve)
        done = calls[0] * nb.LOOKAHEAD_EVERY
        rows.append(dict(step=done, epoch=round(done / steps_per_epoch, 2), moving=moving, clean=clean_score,
                         epoch_end=epoch_end))
        print(json.dumps(rows[-1]), flush=True)
        return moving

    original_lookahead, original_score, fresh_statistics = nb.lookahead, nb.single_view_accuracy, nb.statistics_of

    def lookahead(*a):
        original_lookahead(*a)
        calls[0] += 1
        if calls[0] % args.every == 0:
            probe()

    def curve_score(*a):
        score = probe(epoch_end=True)
        if sum(r["epoch_end"] for r in rows) >= args.epochs:
            raise Stop
        return score

    nb.lookahead, nb.single_view_accuracy = lookahead, curve_score
    nb.statistics_of = lambda model, images: contextlib.nullcontext()  # train's own curve: the moving statistics
    try:
        nb.train(model, train_images, train_labels, curve=curve)
    except Stop:
        pass
    ends = [r for r in rows if r["epoch_end"]]
    for key in ("moving", "clean"):
        print(key, "at epoch ends:", " ".join(f"{100 * r[key]:.1f}" for r in ends))
        print(key, "at every probe:", " ".join(f"{100 * r[key]:.1f}" for r in rows))


if __name__ == "__main__":
    main()
