"""Benchmark the notebook: run it with papermill per seed and print accuracy, time and training compute.

    python bench/bench.py --seeds 0 1 2                 # full default runs
    python bench/bench.py --proxy --seeds 0 1 2         # quick proxy: 2 epochs on all 50k, 2k test images
    python bench/bench.py --proxy -p LABEL_SMOOTHING=0  # an ablation: any notebook parameter, as a Python literal
    python bench/bench.py --record metrics.json         # add a run made outside this script (the committed one;
                                                        # give its -p overrides, if any)
    python bench/bench.py --show 1a2b3c4 5d6e7f8        # the table of the full runs of these commits, from results.csv
    python bench/bench.py --seeds 2 --keep runs/        # also keep each run's outputs in runs/seed2/
    python bench/bench.py --seeds 0 --keep runs/ --save-float  # ...and the float weights before storage
                                                        # (runs/seed0/float_state.pt, for bench/filter_bits.py)

Each run goes to a temporary OUTPUT_DIR, never over the committed submission. Every result is appended to
bench/results/results.csv (with the commit, the machine and the overrides), so the table accumulates over time;
full runs are also scored on the natural-shift development set (bench/robustness.py), where it is present.
The commit is HEAD's, marked "-dirty" when the notebook's code cells differ from HEAD's.
Training compute counts the forward and backward FLOPs (torch.utils.flop_counter) of one step, plus those of
its Muon update (the Newton-Schulz matrix products), times the number of steps.
"""
import argparse
import ast
import csv
import hashlib
import json
import platform
import shutil
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
sys.path.insert(1, str(Path(__file__).resolve().parent))
from robustness import NATURAL, evaluate, load_natural  # noqa: E402  (a sibling script)
from tools.notebook import NOTEBOOK, REPO, code_cells, definitions  # noqa: E402

# 2 epochs on all 50k images (194 steps). A 76-step proxy (10k images, 4 epochs) scored 44% ± 3: it ranked nothing.
PROXY = dict(TEST_SUBSET=2_000, EPOCHS=2)
RESULTS = REPO / "bench" / "results" / "results.csv"
FIELDS = ["when", "commit", "mode", "overrides", "seed", "test_accuracy", "natural_accuracy", "test_images",
          "train_seconds", "device", "device_name", "machine", "train_pflop", "pt_bytes", "epochs", "train_images",
          "precision"]


def machine():
    """The CPU's model name and core count (the GPU's name is in device_name)."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []
    return f"{names[0] if names else platform.processor() or platform.machine()}, {len(names) or '?'} cores"


def natural_accuracy(pt, overrides):
    """Accuracy (0-1) of the .pt on the natural-shift development set; None where the set is absent. `overrides`:
    the notebook parameters the .pt was made with (the test-time reading may depend on them)."""
    natural = load_natural(NATURAL)
    if natural is None:
        return None
    model = definitions(**dict(overrides, DEVICE="cpu")).load_submission(pt)
    return round(evaluate(model, *natural, lambda x, g: x) / 100, 4)


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
    step_flops = counter.get_total_flops() / per_image_batch * nb.BATCH_SIZE
    filters = [p for p in model.parameters() if p.grad is not None and p.dim() == 4 and p.shape[-1] == 3]
    with FlopCounterMode(display=False) as counter:  # Muon's Newton-Schulz products, the same for any batch size
        nb.Muon(filters, lr=0.0, momentum=nb.MUON_MOMENTUM).step()
    step_flops += counter.get_total_flops()
    steps = nb.EPOCHS * (train_images // nb.BATCH_SIZE)
    return step_flops * steps / 1e15


def with_float_weights_saved(notebook, copy):
    """Write to `copy` the notebook with one more cell, before the evaluation, that saves the trained float
    weights to OUTPUT_DIR/float_state.pt."""
    cells = json.loads(Path(notebook).read_text())
    at = next(i for i, cell in enumerate(cells["cells"])  # the export cell rounds the model to the stored weights
              if "export" in cell.get("metadata", {}).get("tags", []))
    cells["cells"].insert(at, {"cell_type": "code", "id": "bench-save-float", "metadata": {}, "outputs": [],
                               "execution_count": None, "source": "if train_now:\n    torch.save("
                               "{k: v.cpu() for k, v in model.state_dict().items()}, out_dir / 'float_state.pt')\n"})
    Path(copy).write_text(json.dumps(cells))
    return copy


def run(parameters, seed, keep=None, natural=False, save_float=False):
    """Metrics of one papermill run (with its natural-shift accuracy if `natural`); with `keep`, its outputs (.pt,
    .csv, notebook...) are copied to keep/seedN; with `save_float`, float_state.pt among them."""
    with tempfile.TemporaryDirectory(prefix="hw2-bench-") as out:
        notebook = with_float_weights_saved(NOTEBOOK, Path(out) / "saving_float.ipynb") if save_float else NOTEBOOK
        papermill.execute_notebook(str(notebook), str(Path(out) / "executed.ipynb"),
                                   parameters=dict(parameters, SEED=seed, OUTPUT_DIR=out, TRAIN=True),
                                   cwd=str(REPO), kernel_name="python3", progress_bar=False)
        if keep:
            shutil.copytree(out, Path(keep) / f"seed{seed}", dirs_exist_ok=True)
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        if natural:
            metrics["natural_accuracy"] = natural_accuracy(next(Path(out).glob("*_submission.pt")), parameters)
        return metrics


def code_version():
    """HEAD's short hash, with "-dirty" when the notebook's code differs from HEAD's (outputs do not count)."""
    git = lambda *args: subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout
    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    with tempfile.NamedTemporaryFile("w", suffix=".ipynb") as head:
        head.write(git("show", f"HEAD:{NOTEBOOK.name}"))
        head.flush()
        same = code_cells(notebook=head.name) == code_cells()
    return commit if same else f"{commit}-dirty"


def append_row(row):
    new_file = not RESULTS.exists()
    if not new_file and RESULTS.open().readline().strip() != ",".join(FIELDS):
        sys.exit(f"{RESULTS} has other columns than {FIELDS}: move it aside (or add the new columns) first")
    with RESULTS.open("a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def make_row(metrics, mode, overrides, parameters, commit):
    row = {"when": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "mode": mode,
           "overrides": json.dumps(overrides, sort_keys=True), "machine": machine(),
           "train_pflop": round(train_pflop(parameters, metrics["train_images"]), 4),
           **{k: metrics[k] for k in FIELDS if k in metrics}}
    row["train_seconds"] = round(row["train_seconds"], 1)
    return row


def print_table(rows, title):
    print(f"\n{title}")
    print(f"{'seed':>4} {'test acc %':>10} {'natural %':>9} {'train s':>8} {'PFLOP':>7} {'.pt bytes':>10}  device")
    for r in rows:
        natural = f"{100 * float(r['natural_accuracy']):.2f}" if r.get("natural_accuracy") not in (None, "") else "-"
        print(f"{r['seed']:>4} {100 * float(r['test_accuracy']):>10.2f} {natural:>9} {float(r['train_seconds']):>8.0f} "
              f"{float(r['train_pflop']):>7.3f} {int(r['pt_bytes']):>10,}  {r['device_name']}, "
              f"{r.get('precision') or '?'}, {r.get('machine') or '?'}")
    accuracies = [100 * float(r["test_accuracy"]) for r in rows]
    seconds = [float(r["train_seconds"]) for r in rows]
    spread = statistics.stdev(accuracies) if len(rows) > 1 else 0.0
    print(f"mean {statistics.mean(accuracies):.2f}% ± {spread:.2f} (std over {len(rows)} seeds, "
          f"min {min(accuracies):.2f}, max {max(accuracies):.2f}), {statistics.mean(seconds):.0f} s per run")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--proxy", action="store_true", help=f"quick proxy runs: {PROXY}")
    parser.add_argument("-p", dest="overrides", type=parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="a notebook parameter (repeatable)")
    parser.add_argument("--record", type=Path, metavar="METRICS_JSON",
                        help="append the full default run that wrote this metrics.json, instead of running")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy each run's outputs to DIR/seedN")
    parser.add_argument("--save-float", action="store_true",
                        help="with --keep: also keep the float weights before storage, DIR/seedN/float_state.pt")
    parser.add_argument("--show", metavar="COMMIT", nargs="+",
                        help="print the full runs of these commits (the same recipe) from results.csv and exit")
    args = parser.parse_args()

    if args.show:
        with RESULTS.open() as f:
            rows = [r for r in csv.DictReader(f) if r["commit"] in args.show and r["mode"] == "full"]
        if not rows:
            sys.exit(f"no full runs of {' or '.join(args.show)} in {RESULTS}")
        print_table(rows, f"full runs of {', '.join(args.show)}, from {RESULTS.relative_to(REPO)}")
        return

    commit = code_version()
    if args.record:
        try:
            metrics = json.loads(args.record.read_text())
        except (OSError, ValueError) as err:
            sys.exit(f"{args.record} is not a readable metrics.json written by the notebook ({err})")
        if metrics.get("train_seconds") is None or metrics.get("test_images") != 10_000:
            sys.exit(f"{args.record} is not from a full training run (TRAIN = False, or a test subset)")
        overrides = dict(args.overrides)  # the -p values the run was made with, if any
        made_it = [pt for pt in args.record.parent.glob("*_submission.pt")
                   if hashlib.sha256(pt.read_bytes()).hexdigest() == metrics.get("pt_sha256")]
        if made_it:  # the .pt this run wrote is still beside its metrics.json
            metrics["natural_accuracy"] = natural_accuracy(made_it[0], overrides)
        row = make_row(metrics, "full", overrides, dict(DOWNLOAD=False, **overrides), commit)
        append_row(row)
        print_table([row], f"recorded {args.record}, commit {commit}")
        return

    if args.save_float and not args.keep:
        sys.exit("--save-float needs --keep DIR: the float weights are kept with the run's outputs")
    overrides = dict(args.overrides)
    parameters = dict(PROXY if args.proxy else {}, DOWNLOAD=False, **overrides)
    rows = []
    for seed in args.seeds:
        metrics = run(parameters, seed, args.keep, natural=not args.proxy, save_float=args.save_float)
        row = make_row(metrics, "proxy" if args.proxy else "full", overrides, parameters, commit)
        append_row(row)
        rows.append(row)
        print(f"seed {seed}: {100 * row['test_accuracy']:.2f}% in {row['train_seconds']:.0f} s", flush=True)
    print_table(rows, f"{'proxy' if args.proxy else 'full'} runs, overrides {overrides or 'none'}, "
                      f"commit {commit}, {platform.node()}")


if __name__ == "__main__":
    main()
