"""What storing the 3×3 filters in fewer bits costs: for float weights saved by `bench.py --save-float`, each
bit width's .pt bytes, the entropy of its levels, and how many predictions change against the float weights.

    python bench/filter_bits.py runs/seed0/float_state.pt --bits 8 7 6 5
    python bench/filter_bits.py weights.pt --bits 3 --per-bank   # one bank at a time at 3 bits, the rest as they are

Predictions are the notebook's `predict` (the submitted model's test-time views). Choose the width on the
training images and the natural-shift development set; the test-set columns are there to report, not to choose.
"""
import argparse
import io
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from robustness import NATURAL, load_natural  # noqa: E402  (a sibling script)
from tools.notebook import REPO, definitions  # noqa: E402


def entropy_bits(banks):
    """Order-0 entropy (bits per weight) of the integer levels of the filter banks, taken together."""
    counts = torch.bincount(torch.cat([t.flatten().long() + 128 for t in banks])).double()
    p = counts[counts > 0] / counts.sum()
    return -(p * p.log2()).sum().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("float_state", type=Path, help="a float state_dict of myResNet() (bench.py --save-float)")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 7, 6, 5])
    parser.add_argument("--train-images", type=int, default=10_000, help="the first N training images")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--per-bank", action="store_true",
                        help="round one 3×3 bank at a time (the others as they are) and print its levels' entropy")
    args = parser.parse_args()

    nb = definitions(DEVICE="cpu")
    train_images, train_labels, test_images, test_labels = nb.load_cifar10(args.data_dir)
    sets = {"train": (train_images[:args.train_images], train_labels[:args.train_images]),
            "test": (test_images, test_labels)}
    natural = load_natural(NATURAL)
    if natural is not None:
        sets["natural"] = natural

    def model_from(state):
        model = nb.myResNet()
        model.load_state_dict(state)
        return model

    float_model = model_from(torch.load(args.float_state))
    reference = {name: nb.predict(float_model, images) for name, (images, _) in sets.items()}
    accuracy = lambda predictions, labels: 100 * (predictions == labels).double().mean().item()
    columns = "".join(f"{name + ' %':>11}{'changed':>8}" for name in sets)
    first = (f"{'bank rounded':>45} {'weights':>8} {'H bits':>7} {'H now':>7}" if args.per_bank
             else f"{'bits':>4} {'.pt bytes':>10} {'H bits':>7}")
    print(f"{args.float_state}\n{first}{columns}")
    print(f"{'float':>{len(first)}}" + "".join(
        f"{accuracy(reference[name], labels):>11.2f}{0:>8}" for name, (_, labels) in sets.items()))

    def scores(model):
        cells = ""
        for name, (images, labels) in sets.items():
            predictions = nb.predict(model, images)
            cells += f"{accuracy(predictions, labels):>11.2f}{(predictions != reference[name]).sum().item():>8}"
        return cells

    if args.per_bank:  # "H now": the bank's levels at the notebook's FILTER_BITS
        banks = [k for k, v in float_model.state_dict().items() if k.endswith("conv.weight") and v.shape[-2:] == (3, 3)]
        for bits in args.bits:
            for key in banks:
                state = dict(float_model.state_dict())
                levels, scale = nb.filter_levels(state[key], bits)
                state[key] = nb.filter_values(levels, scale)
                now = entropy_bits([nb.filter_levels(float_model.state_dict()[key], nb.bank_bits(key, nb.FILTER_BITS))[0]])
                print(f"{bits} bits: {key:37s} {levels.numel():>8,} {entropy_bits([levels]):>7.2f} {now:>7.2f}"
                      f"{scores(model_from(state))}", flush=True)
        return
    for bits in args.bits:
        stored = nb.stored_state_dict(float_model, bits)
        buffer = io.BytesIO()
        torch.save(stored, buffer)
        banks = [nb.filter_levels(w, nb.bank_bits(k, bits))[0] for k, w in nb.filter_banks(float_model).items()]
        print(f"{bits:>4} {buffer.getbuffer().nbytes:>10,} {entropy_bits(banks):>7.2f}"
              f"{scores(model_from(nb.expand_stored(nb.myResNet(), stored)))}", flush=True)

if __name__ == "__main__":
    main()
