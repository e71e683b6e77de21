"""Where one training step's time goes on this machine: each part of the notebook's step timed on its own, then the
operators of an eager forward + backward (torch.profiler), grouped.

    python bench/profile_step.py              # batch BATCH_SIZE of real training images, 5 timed repeats
    python bench/profile_step.py --compiled   # also the compiled forward + backward (compiles first, a minute)

The parts are the notebook's own functions, called as train() calls them: augmentation (flips, shifts), zoom,
blur, the contrast floor, forward + backward (fp32, and under bf16 autocast), the SGD and Muon steps (Muon's
Newton-Schulz products inside), a lookahead pull, and the per-epoch test curve (per epoch, not per step). On a
virtual machine the timings are only as steady as the host: the share of CPU time the hypervisor took meanwhile
(steal, from /proc/stat) is printed with them.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import REPO, definitions  # noqa: E402

GROUPS = {  # operator name fragments -> group, first match wins
    "convolution": ("conv", "mkldnn"), "max pooling": ("max_pool",), "matrix products": ("mm", "matmul", "bmm"),
    "reductions": ("sum", "mean", "amax", "var", "norm"),
    "element-wise": ("add", "sub", "mul", "div", "pow", "sqrt", "rsqrt", "neg", "fill", "copy", "where", "relu",
                     "threshold", "clamp", "exp", "lerp"),
}


def cpu_times():
    """(steal, total) CPU ticks since boot from /proc/stat; (0, 0) where there is none."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except OSError:
        return 0, 0
    return ticks[7], sum(ticks)


def timed(fn, repeats):
    """Median seconds of fn() over `repeats` calls, after one warm-up call."""
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compiled", action="store_true")
    args = parser.parse_args()
    nb = definitions(DEVICE="cpu")
    train_images, train_labels, test_images, test_labels = nb.load_cifar10(args.data_dir)
    torch.manual_seed(0)
    model = nb.myResNet().to(memory_format=torch.channels_last)
    model.whiten_from(train_images[:5000], nb.WHITEN_EPS)
    model.train()
    batch = torch.randperm(len(train_images))[:nb.BATCH_SIZE]
    images, labels = train_images[batch], train_labels[batch]
    flip = torch.rand(len(images)) < 0.5
    optimizers = nb.make_optimizers(model, None)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=nb.LABEL_SMOOTHING)
    average = {k: v.clone() for k, v in model.state_dict().items()}
    shifted = nb.augment(images, flip, nb.TRANSLATE).float().div_(255)
    zoomed = nb.random_zoom(shifted, nb.ZOOM_SHARE, nb.ZOOM_MIN_SIDE)
    x = nb.random_blur(zoomed, nb.BLUR).contiguous(memory_format=torch.channels_last)

    def forward_backward(forward=model, dtype=None):
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(forward(nb.raise_contrast(x)).float(), labels)
        loss.backward()

    forward_backward()
    parts = {
        "augment (flips, shifts) + to float": lambda: nb.augment(images, flip, nb.TRANSLATE).float().div_(255),
        "random zoom": lambda: nb.random_zoom(shifted, nb.ZOOM_SHARE, nb.ZOOM_MIN_SIDE),
        "random blur": lambda: nb.random_blur(zoomed, nb.BLUR),
        "contrast floor": lambda: nb.raise_contrast(x),
        "forward + backward, eager": forward_backward,
        "forward + backward, eager, bf16": lambda: forward_backward(dtype=torch.bfloat16),
        "SGD step": lambda: optimizers[0].step(),
        "Muon step": lambda: optimizers[1].step(),
        "lookahead pull (every 5th step)": lambda: nb.lookahead(model, average, 0.5),
    }
    if args.compiled:
        compiled = torch.compile(model)
        parts["forward + backward, compiled"] = lambda: forward_backward(compiled)
        parts["forward + backward, compiled, bf16"] = lambda: forward_backward(compiled, torch.bfloat16)
    print(f"one step of batch {nb.BATCH_SIZE} on {torch.get_num_threads()} threads, torch {torch.__version__} "
          f"(median of {args.repeats}):")
    steal_before, total_before = cpu_times()
    for name, fn in parts.items():
        print(f"  {name:36s} {timed(fn, args.repeats):7.3f} s")
    steal, total = (now - before for now, before in zip(cpu_times(), (steal_before, total_before)))
    if total:
        print(f"  (the hypervisor took {steal / total:.0%} of the CPU time meanwhile)")
    curve = test_images[:nb.CURVE_TEST_IMAGES], test_labels[:nb.CURVE_TEST_IMAGES]
    print(f"  {'test curve (per epoch)':36s} {timed(lambda: nb.single_view_accuracy(model, *curve), 1):7.3f} s")

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        forward_backward()
    totals, everything = {}, 0.0
    for event in prof.key_averages():
        everything += event.self_cpu_time_total
        group = next((g for g, parts in GROUPS.items() if any(p in event.key.lower() for p in parts)), "other")
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total
    print("eager forward + backward, self time by operator group:")
    for group, micros in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {group:16s} {micros / 1e6:7.3f} s  {micros / everything:6.1%}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
