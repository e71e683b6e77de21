"""Many full training runs of the notebook's recipe and its variants in one process: made for a few GPU minutes.

    python bench/sweep.py PLAN.json --out runs.jsonl [--notebook NB.ipynb] [--data-dir DIR] [--deadline 480]

PLAN.json is a list of {"name": ..., "seeds": [...], "params": {NOTEBOOK_PARAMETER: value}, "robust": bool}, run
in order until the deadline (seconds) would be passed. Each run does what the notebook does, from its own code
(tools/notebook.py): seed, build myResNet(), train() with the parameters, store the weights as the export does; then it
scores the 10,000 test images through forward() (and two other test-time views, for comparison), and, where
"robust", the summary of bench/robustness.py on the first --robust-images test images (its batches are made once
and kept on the device). One JSON line per run goes to --out as soon as the run ends.

Unlike bench/bench.py this needs no papermill or Jupyter kernel, so it runs on a bare GPU machine, but it
records no executed notebook: the committed submission still comes from a papermill or Jupyter run.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import robustness  # noqa: E402  (a sibling: this folder is first on sys.path)
from tools.notebook import NOTEBOOK, REPO, code_cells, definitions  # noqa: E402


@torch.no_grad()
def view_accuracies(nb, model, images, labels):
    """Test accuracy (%) with one mirrored view pair and with five (forward()'s three, two more diagonals); forward()'s
    own score is the run's test_accuracy."""
    device = next(model.parameters()).device
    sums = {"2 views": 0, "10 views": 0}
    for i in range(0, len(images), nb.EVAL_BATCH_SIZE):
        x = images[i:i + nb.EVAL_BATCH_SIZE].to(device).float().div_(255).contiguous(memory_format=torch.channels_last)
        y = labels[i:i + nb.EVAL_BATCH_SIZE].to(device)
        padded = nb.reflect_pad(x, 1)
        shifted = [nb.mirrored_logits(model, padded[..., a:a + x.shape[-2], b:b + x.shape[-1]])
                   for a, b in ((0, 0), (2, 2), (0, 2), (2, 0))]
        center = nb.mirrored_logits(model, x)
        for key, logits in (("2 views", center), ("10 views", 2 * center + sum(shifted) / 2)):
            sums[key] += (logits.argmax(1) == y).sum().item()
    return {k: 100 * v / len(images) for k, v in sums.items()}


class RobustSuite:
    """bench/robustness.py's tests on the first n test images, their batches made once and kept on `device`."""

    def __init__(self, images, labels, device):
        self.labels = labels
        tests = {"clean": lambda x, g: x, "64px": robustness.resize(64, 64), "96px": robustness.resize(96, 96)}
        self.batches = {k: [b.to(device) for b in robustness.transformed(images, t)] for k, t in tests.items()}
        natural = robustness.load_natural()  # the development set of natural photos, where present
        self.natural = natural and ([b.to(device) for b in robustness.transformed(natural[0], lambda x, g: x)],
                                    natural[1])
        for name, (corrupt, levels) in robustness.CORRUPTIONS.items():
            if name in robustness.BLIND:  # scored once, on a final model: never in a sweep
                continue
            for s, level in enumerate(levels):
                transform = lambda x, g, corrupt=corrupt, level=level: corrupt(x, level, g)
                self.batches[(name, s)] = [b.to(device) for b in robustness.transformed(images, transform, seed=s)]

    def summary(self, model):
        acc = {k: robustness.score(model, b, self.labels) for k, b in self.batches.items()}
        means = {n: statistics.mean(acc[(n, s)] for s in range(5)) for n in robustness.TUNE + robustness.HELD_OUT}
        return {"clean": acc["clean"], "64px": acc["64px"] - acc["clean"], "96px": acc["96px"] - acc["clean"],
                "natural": robustness.score(model, *self.natural) if self.natural else None,
                "corruption_all": statistics.mean(means.values()),
                "corruption_tune": statistics.mean(means[n] for n in robustness.TUNE),
                "corruption_held_out": statistics.mean(means[n] for n in robustness.HELD_OUT),
                "per_corruption": means}


class Notebook:
    """The notebook's definitions, made once so that torch.compile's work carries over from run to run (the classes
    stay the same objects); each run resets the parameters to the notebook's defaults, then applies its own."""

    def __init__(self, path):
        self.module = definitions(path)
        defaults = {}
        exec(code_cells("parameters", path)[0], defaults)
        self.defaults = {k: v for k, v in defaults.items() if k.isupper()}

    def configure(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise KeyError(f"not parameters of the notebook: {unknown}")
        vars(self.module).update(self.defaults, DOWNLOAD=False, **params)
        return self.module


def run(notebook, data, params, seed, suite):
    nb = notebook.configure(SEED=seed, **params)
    device = nb.pick_device(nb.DEVICE)
    train_images, train_labels, test_images, test_labels = data
    train_images, train_labels = train_images[:nb.TRAIN_SUBSET], train_labels[:nb.TRAIN_SUBSET]
    test_images, test_labels = test_images[:nb.TEST_SUBSET], test_labels[:nb.TEST_SUBSET]
    torch.manual_seed(seed)
    model = nb.myResNet().to(device, memory_format=torch.channels_last)
    start = time.perf_counter()
    history = nb.train(model, train_images.to(device), train_labels.to(device))  # the recipe of the configured module
    train_seconds = time.perf_counter() - start
    model.load_state_dict(nb.stored_state_dict(model))  # exactly the weights the export saves
    model.eval()
    result = {"seed": seed, "train_seconds": round(train_seconds, 2),
              "epoch_seconds": [round(h["seconds"], 2) for h in history],
              "test_accuracy": 100 * nb.accuracy(nb.predict(model, test_images), test_labels),
              "views": view_accuracies(nb, model, test_images, test_labels)}
    if suite:
        result["robust"] = suite.summary(model)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--deadline", type=float, default=480, help="seconds: start no run that would end later")
    parser.add_argument("--robust-images", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()

    plan = json.loads(args.plan.read_text())
    notebook = Notebook(args.notebook)
    for entry in plan:
        notebook.configure(**entry["params"])  # a misspelt parameter fails now, not after an hour
    nb = notebook.configure()
    for name in ("recompile_limit", "cache_size_limit"):  # the variants' recompiles must not fall back to eager
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    data = nb.load_cifar10(args.data_dir)
    device = nb.pick_device(nb.DEVICE)
    needs_suite = any(entry.get("robust") for entry in plan)
    suite = RobustSuite(data[2][:args.robust_images], data[3][:args.robust_images], device) if needs_suite else None
    print(f"torch {torch.__version__} on {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
          + f"; data and suite ready in {time.perf_counter() - start:.0f} s", flush=True)

    longest = 0.0
    for entry in plan:
        for seed in entry["seeds"]:
            elapsed = time.perf_counter() - start
            if elapsed + 1.2 * longest > args.deadline:
                print(f"skipped {entry['name']} seed {seed}: the deadline is near", flush=True)
                continue
            began = time.perf_counter()
            params = entry["params"]
            try:
                result = run(notebook, data, params, seed, suite if entry.get("robust") else None)
            except Exception as err:  # one failing variant must not cost the rest of the lease
                result = {"seed": seed, "error": f"{type(err).__name__}: {err}"}
                if params.get("COMPILE", True):  # torch.compile is the likeliest to break on another torch
                    print(f"{entry['name']} seed {seed} failed ({result['error'][:300]}); again without compile")
                    params = dict(params, COMPILE=False)
                    try:
                        result = run(notebook, data, params, seed, suite if entry.get("robust") else None)
                    except Exception as err:
                        result = {"seed": seed, "error": f"{type(err).__name__}: {err}"}
            longest = max(longest, time.perf_counter() - began)
            result = {"name": entry["name"], "params": params, **result,
                      "device": torch.cuda.get_device_name() if device.type == "cuda" else str(device),
                      "torch": torch.__version__}
            with args.out.open("a") as f:
                f.write(json.dumps(result) + "\n")
            robust = result.get("robust")
            print(f"{entry['name']:<28} seed {seed}: "
                  + (result["error"] if "error" in result else
                     f"{result['test_accuracy']:.2f}%  {result['train_seconds']:.1f} s"
                     + (f"  corr {robust['corruption_all']:.2f} (tune {robust['corruption_tune']:.2f})"
                        f"  64px {robust['64px']:+.2f} 96px {robust['96px']:+.2f}" if robust else "")),
                  flush=True)
    summarize(args.out)


def summarize(path):
    """Mean and spread per plan entry of the runs in a sweep's JSON lines."""
    groups = {}
    for line in path.read_text().splitlines():
        result = json.loads(line)
        if "error" not in result:
            groups.setdefault(result["name"], []).append(result)
    print(f"\n{'name':<28} {'n':>2} {'test acc %':>14} {'10 views':>8} {'corr all':>8} {'tune':>6} {'held':>6} "
          f"{'64px':>6} {'96px':>6} {'train s':>7}")
    for name, runs in groups.items():
        acc = [r["test_accuracy"] for r in runs]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        robust = [r["robust"] for r in runs if "robust" in r]
        mean = lambda key: statistics.mean(r[key] for r in robust) if robust else float("nan")
        print(f"{name:<28} {len(runs):>2} {statistics.mean(acc):>7.2f} ± {spread:.2f} "
              f"{statistics.mean(r['views']['10 views'] for r in runs):>8.2f} {mean('corruption_all'):>8.2f} "
              f"{mean('corruption_tune'):>6.2f} {mean('corruption_held_out'):>6.2f} {mean('64px'):>+6.2f} "
              f"{mean('96px'):>+6.2f} {statistics.mean(r['train_seconds'] for r in runs):>7.1f}")


if __name__ == "__main__":
    main()
