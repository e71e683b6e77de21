"""Benchmark the notebook: run it with papermill per seed and print accuracy, time and training compute.

    python bench/bench.py --seeds 0 1 2                 # full default runs
    python bench/bench.py --proxy --seeds 0 1 2         # quick proxy: 2 epochs on all 50k, 2k test images
    python bench/bench.py --proxy -p LABEL_SMOOTHING=0  # an ablation: any notebook parameter, as a Python literal

Each run goes to a temporary OUTPUT_DIR, never over the committed submission. Every result is appended to
bench/results.csv (with the commit, the machine and the overrides), so the table accumulates across sessions.
Training compute counts the convolutions' forward and backward FLOPs (torch.utils.flop_counter) of one step,
times the number of steps.
"""
import argparse
import ast
import csv
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import papermill
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import NOTEBOOK, REPO, definitions  # noqa: E402

# 2 epochs on all 50k images (194 steps). A 76-step proxy (10k images, 4 epochs) scored 44% ± 3: it ranked nothing.
PROXY = dict(TEST_SUBSET=2_000, EPOCHS=2)
RESULTS = REPO / "bench" / "results.csv"
FIELDS = ["when", "commit", "mode", "overrides", "seed", "test_accuracy", "test_images", "train_seconds",
          "device", "device_name", "train_pflop", "pt_bytes", "epochs", "train_images"]


def parse_override(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare word is a string


def train_pflop(parameters, train_images):
    """Forward + backward FLOPs of one training step, times the number of steps of the run."""
    nb = definitions(**parameters)
    model = nb.myResNet().train()
    per_image_batch = 4  # FLOPs are linear in the batch size: count a small batch and scale
    x, y = torch.rand(per_image_batch, 3, 32, 32), torch.randint(0, 10, (per_image_batch,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    steps = nb.EPOCHS * (train_images // nb.BATCH_SIZE)
    return counter.get_total_flops() / per_image_batch * nb.BATCH_SIZE * steps / 1e15


def run(parameters, seed):
    with tempfile.TemporaryDirectory(prefix="hw2-bench-") as out:
        papermill.execute_notebook(str(NOTEBOOK), str(Path(out) / "executed.ipynb"),
                                   parameters=dict(parameters, SEED=seed, OUTPUT_DIR=out),
                                   cwd=str(REPO), kernel_name="python3", progress_bar=False)
        return json.loads((Path(out) / "metrics.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--proxy", action="store_true", help=f"quick proxy runs: {PROXY}")
    parser.add_argument("-p", dest="overrides", type=parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="a notebook parameter (repeatable)")
    args = parser.parse_args()

    overrides = dict(args.overrides)
    parameters = dict(PROXY if args.proxy else {}, DOWNLOAD=False, **overrides)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    rows = []
    for seed in args.seeds:
        metrics = run(parameters, seed)
        row = {"when": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "mode": "proxy" if args.proxy else "full",
               "overrides": json.dumps(overrides, sort_keys=True), "seed": seed,
               "train_pflop": round(train_pflop(parameters, metrics["train_images"]), 4),
               **{k: metrics[k] for k in FIELDS if k in metrics}}
        row["train_seconds"] = round(row["train_seconds"], 1)
        rows.append(row)
        new_file = not RESULTS.exists()
        with RESULTS.open("a", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        print(f"seed {seed}: {100 * row['test_accuracy']:.2f}% in {row['train_seconds']:.0f} s", flush=True)

    print(f"\n{'proxy' if args.proxy else 'full'} runs, overrides {overrides or 'none'}, commit {commit}, "
          f"{platform.node()}")
    print(f"{'seed':>4} {'test acc %':>10} {'train s':>8} {'PFLOP':>7} {'.pt bytes':>10}  device")
    for r in rows:
        print(f"{r['seed']:>4} {100 * r['test_accuracy']:>10.2f} {r['train_seconds']:>8.0f} {r['train_pflop']:>7.3f} "
              f"{r['pt_bytes']:>10,}  {r['device_name']}")
    accuracies = [100 * r["test_accuracy"] for r in rows]
    seconds = [r["train_seconds"] for r in rows]
    spread = statistics.stdev(accuracies) if len(rows) > 1 else 0.0
    print(f"mean {statistics.mean(accuracies):.2f}% ± {spread:.2f} (std over {len(rows)} seeds, "
          f"min {min(accuracies):.2f}, max {max(accuracies):.2f}), {statistics.mean(seconds):.0f} s per run")


if __name__ == "__main__":
    main()
