"""Score a submission .pt the way a grader would: test images as PNG files, torchvision's ImageFolder and
DataLoader with each common transform pipeline, three batch sizes, and the loading code of a course template.

    python bench/grader.py                                  # all 10,000 test images (batch size 1: 500 of them)
    python bench/grader.py --images 1000 --resizes 0 64     # a quicker look (0 = no Resize)

Only `myResNet` and the CIFAR-10 reader come from the notebook (as a grader would have them); the images
travel through real files and torchvision transforms. Each cell is the accuracy (%) and its difference from
plain ToTensor() without resizing at the same batch size; "read as" is what forward() made of the first batch.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import PIL.Image
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import REPO, definitions  # noqa: E402

CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PIPELINES = {
    "ToTensor()": [transforms.ToTensor()],
    "PILToTensor() (uint8)": [transforms.PILToTensor()],
    "Normalize(0.5, 0.5)": [transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)],
    "Normalize(CIFAR-10)": [transforms.ToTensor(), transforms.Normalize(*CIFAR10)],
    "Normalize(ImageNet)": [transforms.ToTensor(), transforms.Normalize(*IMAGENET)],
    "0-255 floats": [transforms.PILToTensor(), transforms.Lambda(lambda x: x.float())],
}


def write_pngs(images, labels, classes, root):
    """The images as root/<class>/<index>.png, the layout ImageFolder reads."""
    for name in classes:
        (root / name).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        PIL.Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / classes[label] / f"{i:05d}.png")


def grader_loads(nb, pt):
    """The loading code a grader writes, in its common variants; every one must give the same tensors."""
    model = nb.myResNet()
    model.load_state_dict(torch.load(pt))  # torch >= 2.6: weights_only=True by default
    reference = model.state_dict()
    print("  model = myResNet(); model.load_state_dict(torch.load(pt)): loads (strict, weights_only by default)")
    variants = {'torch.load(pt, map_location="cpu")': lambda: torch.load(pt, map_location="cpu"),
                "torch.load(pt, weights_only=True)": lambda: torch.load(pt, weights_only=True)}
    if torch.cuda.is_available():
        variants['torch.load(pt, map_location="cuda"), .cuda()'] = lambda: torch.load(pt, map_location="cuda")
    for name, load in variants.items():
        other = nb.myResNet()
        other.load_state_dict(load())
        if "cuda" in name:
            other.cuda()
        same = all(torch.equal(v.cpu(), reference[k]) for k, v in other.state_dict().items())
        print(f"  model = myResNet(); model.load_state_dict({name}): {'the same tensors' if same else 'DIFFERENT'}")
        if not same:
            sys.exit("the loading variants disagree")
    if not torch.cuda.is_available():
        print('  model.load_state_dict(torch.load(pt, map_location="cuda")): skipped, no CUDA here')
    return model


def score(nb, model, dataset, batch_size, device):
    """Accuracy (%) over the dataset, and how forward() read its first batch."""
    model.to(device).eval()
    correct, seen, read_as = 0, 0, None
    with torch.no_grad():
        for images, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            if read_as is None:
                read_as = nb.read_images(images)[1]
            correct += (model(images.to(device)).argmax(1).cpu() == labels).sum().item()
            seen += len(labels)
    return 100 * correct / seen, read_as


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path, default=REPO / "StudentID_submission.pt")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--images", type=int, default=10_000, help="the first N test images")
    parser.add_argument("--single-images", type=int, default=500, help="how many of them to score one at a time")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1000])
    parser.add_argument("--resizes", type=int, nargs="+", default=[0, 32, 64, 96], help="Resize(n) first; 0: none")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    nb = definitions(DEVICE="cpu")
    _, _, images, labels = nb.load_cifar10(args.data_dir)
    images, labels = images[:args.images], labels[:args.images]
    print(f"{args.pt.name} ({args.pt.stat().st_size:,} bytes), torch {torch.__version__}, on {args.device}")
    model = grader_loads(nb, args.pt)

    with tempfile.TemporaryDirectory(prefix="hw2-grader-") as tmp:
        write_pngs(images, labels.tolist(), nb.CLASSES, Path(tmp))
        every = max(1, len(images) // args.single_images)
        header = "".join(f"{f'bs {b} ({min(len(images), args.single_images) if b == 1 else len(images):,})':>20}"
                         for b in args.batch_sizes)
        print(f"\n{len(images):,} CIFAR-10 test images as PNG files, ImageFolder + DataLoader\n")
        print(f"{'pipeline':<24}{'resize':>8}{header}   read as")
        baseline = {}
        start = time.perf_counter()
        for size in args.resizes:
            for name, steps in PIPELINES.items():
                dataset = datasets.ImageFolder(tmp, transforms.Compose(([transforms.Resize(size)] if size else []) + steps))
                cells = []
                for batch_size in args.batch_sizes:
                    subset = Subset(dataset, range(0, len(dataset), every)[:args.single_images]) if batch_size == 1 \
                        else dataset
                    accuracy, read_as = score(nb, model, subset, batch_size, args.device)
                    baseline.setdefault(batch_size, accuracy)  # the first row: ToTensor(), no resize
                    cells.append(f"{accuracy:6.2f} ({accuracy - baseline[batch_size]:+.2f})")
                print(f"{name:<24}{size or '—':>8}" + "".join(f"{c:>20}" for c in cells) + f"   {read_as}", flush=True)
        print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
