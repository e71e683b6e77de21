"""The .pt's storage: bytes per tensor, bits per filter level against the levels' entropy, and decode time.

    python bench/storage.py                     # the committed StudentID_submission.pt
    python bench/storage.py --pt other.pt --repeats 20

Entropy is order-0, in bits per level: per bank (one table a bank) and per class of channels (the coder's model:
a table per bank and scale class). The coded bits include the tables and each lane's final state. Decode time is
myResNet().load_state_dict(torch.load(pt)), the grader's load, timed over --repeats runs (median, fastest).
"""
import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import REPO, definitions  # noqa: E402


def entropy_bits(symbols):
    counts = np.bincount(symbols)
    p = counts[counts > 0] / len(symbols)
    return -(p * np.log2(p)).sum() * len(symbols)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path, default=REPO / "StudentID_submission.pt")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    nb = definitions(DEVICE="cpu")
    saved = torch.load(args.pt)
    print(f"{args.pt.name}: {args.pt.stat().st_size:,} bytes, {len(saved)} tensors\n")
    for key, tensor in saved.items():
        print(f"  {key:<24} {str(tensor.dtype):<14} {tuple(tensor.shape)!s:<10} {tensor.numel() * tensor.element_size():>9,} bytes")
    payload = sum(t.numel() * t.element_size() for t in saved.values())
    print(f"  {'tensors in all':<24} {'':<25}{payload:>9,} bytes; archive and pickle "
          f"{args.pt.stat().st_size - payload:,}\n")

    model = nb.myResNet()
    state = nb.expand_stored(model, saved)
    levels_total = per_bank_total = per_class_total = 0
    print(f"  {'bank':<40} {'levels':>8} {'H bank':>7} {'H class':>8}")
    widths = iter([w for k in saved if k.endswith(".filters.widths") for w in saved[k].tolist()])  # bank order
    for key in nb.filter_banks(model):
        bits = next(widths)
        levels, scale = nb.filter_levels(state[key], bits)
        symbols = levels.flatten().long().numpy() + 2 ** (bits - 1) - 1
        classes = np.repeat(nb.scale_classes(scale), levels[0].numel())
        per_class = sum(entropy_bits(symbols[classes == c]) for c in np.unique(classes))
        levels_total += len(symbols)
        per_bank_total += entropy_bits(symbols)
        per_class_total += per_class
        print(f"  {key:<40} {len(symbols):>8,} {entropy_bits(symbols) / len(symbols):>7.3f} "
              f"{per_class / len(symbols):>8.3f}")
    coded_bits = 8 * sum(saved[k].numel() * saved[k].element_size() for k in saved
                         if k.endswith((".filters.coded", ".filters.widths", ".filters.tables")))
    print(f"\n  levels: {levels_total:,}; entropy per bank {per_bank_total / levels_total:.4f} bits a level "
          f"({per_bank_total / 8:,.0f} bytes), per class {per_class_total / levels_total:.4f} "
          f"({per_class_total / 8:,.0f} bytes)")
    print(f"  coded (words, lanes' states, widths and tables): {coded_bits / levels_total:.4f} bits a level "
          f"({coded_bits / 8:,.0f} bytes), {100 * (coded_bits / per_class_total - 1):+.2f}% over the class entropy")

    data = args.pt.read_bytes()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        nb.myResNet().load_state_dict(torch.load(io.BytesIO(data)))
        times.append(time.perf_counter() - start)
    print(f"\n  the grader's load (torch.load + load_state_dict, decoding included): median {statistics.median(times):.3f} s, "
          f"fastest {min(times):.3f} s over {args.repeats} runs, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
