"""What each test-time repair adds: a .pt scored with all repairs, then with one repair switched off at a time,
on the clean test images and on the corruptions of both halves of bench/robustness.py's suite (never the blind
ones), set against the lines of code the repair takes in the notebook.

    python bench/repairs.py                             # the committed .pt, all 10,000 test images
    python bench/repairs.py --pt other.pt --images 2000 --corruptions impulse_noise pixelate
    python bench/repairs.py --repairs impulses --corruptions impulse_noise

A repair is switched off by replacing its function in the notebook's namespace with one that returns its input,
so nothing else of the test-time path changes.
"""
import argparse
import ast
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from robustness import CORRUPTIONS, HELD_OUT, TUNE, evaluate  # noqa: E402  (a sibling script)
from tools.notebook import REPO, code_cells, definitions  # noqa: E402

# repair: (the functions it needs beyond the shared helpers, what switches it off)
REPAIRS = {
    "impulses": (("median3", "remove_impulses"), ("remove_impulses", lambda images: images)),
    "sensor noise": (("flattest_block_noise", "nonlocal_means", "denoise"), ("denoise", lambda images: images)),
    "contrast floor": (("raise_contrast",), ("raise_contrast", lambda images: images)),
    "repeated lines": (("new_lines",), ("new_lines",
                                           lambda image, axis: image.new_ones(image.shape[axis], dtype=bool))),
}


def function_lines(names):
    """Non-blank lines of the notebook's functions of these names."""
    lines = 0
    for source in code_cells("defs"):
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                body = source.splitlines()[node.lineno - 1 - len(node.decorator_list):node.end_lineno]
                lines += sum(1 for line in body if line.strip())
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path, default=REPO / "StudentID_submission.pt")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--images", type=int, default=10_000, help="the first N test images")
    parser.add_argument("--corruptions", nargs="+", default=list(TUNE + HELD_OUT), choices=list(TUNE + HELD_OUT))
    parser.add_argument("--repairs", nargs="+", default=list(REPAIRS), choices=list(REPAIRS),
                        help="the repairs to switch off, one at a time")
    args = parser.parse_args()

    nb = definitions(DEVICE="cpu")
    model = nb.load_submission(args.pt)
    _, _, images, labels = nb.load_cifar10(args.data_dir)
    images, labels = images[:args.images], labels[:args.images]

    def scores():
        result = {"clean": evaluate(model, images, labels, lambda x, g: x)}
        for name in args.corruptions:
            corrupt, severities = CORRUPTIONS[name]
            result[name] = statistics.mean(evaluate(model, images, labels, lambda x, g: corrupt(x, level, g), seed=s)
                                           for s, level in enumerate(severities))
        return result

    print(f"{args.pt.name}, the first {len(images):,} test images; corruptions: mean over five severities\n")
    columns = ["clean"] + args.corruptions
    print(f"{'switched off':<16}{'lines':>6}" + "".join(f"{c[:14]:>15}" for c in columns), flush=True)
    everything = scores()
    print(f"{'nothing':<16}{'':>6}" + "".join(f"{everything[c]:15.2f}" for c in columns), flush=True)
    for repair, (functions, (name, off)) in ((r, REPAIRS[r]) for r in args.repairs):
        original = getattr(nb, name)
        setattr(nb, name, off)
        try:
            without = scores()
        finally:
            setattr(nb, name, original)
        print(f"{repair:<16}{function_lines(functions):6d}"
              + "".join(f"{without[c] - everything[c]:+15.2f}" for c in columns), flush=True)


if __name__ == "__main__":
    main()
