"""How forward() reads each input format, without the network: the pixels read_images() recovers, against the
pixels the images really have, per pipeline and batch size.

    python bench/formats.py                 # the first 500 CIFAR-10 test images
    python bench/formats.py --images 2000

For each pipeline and batch size it prints how many images come back more than 0.02 (five 8-bit levels) away
from their true pixels somewhere, and how the batches were read. Rows marked "tensor resize" apply the resize
to the float tensors (as a torchvision pipeline does after ToTensor), so their pixels leave the 8-bit grid.
"""
import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import REPO, definitions  # noqa: E402

CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5,) * 3, (0.5,) * 3)
bilinear = lambda x: F.interpolate(x, size=64, mode="bilinear", antialias=True)
bicubic = lambda x: F.interpolate(x, size=64, mode="bicubic")
PIPELINES = {  # name: (what the pipeline does to [0, 1] pixels, the true pixels it carries)
    "ToTensor": (lambda x: x, lambda x: x),
    "uint8": (lambda x: (x * 255).round().to(torch.uint8), lambda x: x),
    "0-255 floats": (lambda x: x * 255, lambda x: x),
    "Normalize(0.5, 0.5)": (transforms.Normalize(*HALF), lambda x: x),
    "Normalize(CIFAR-10)": (transforms.Normalize(*CIFAR10), lambda x: x),
    "Normalize(ImageNet)": (transforms.Normalize(*IMAGENET), lambda x: x),
    "Normalize(CIFAR-10), fp16": (lambda x: transforms.Normalize(*CIFAR10)(x).half(), lambda x: x),
    "Normalize(CIFAR-100) (unknown)": (transforms.Normalize((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
                                       lambda x: x),
    "Normalize(0.45, 0.1) (unknown)": (transforms.Normalize((0.45,) * 3, (0.1,) * 3), lambda x: x),
    "ToTensor, tensor resize 64 bilinear": (bilinear, bilinear),
    "Normalize(CIFAR-10), tensor resize 64 bilinear": (lambda x: bilinear(transforms.Normalize(*CIFAR10)(x)), bilinear),
    "ToTensor, tensor resize 64 bicubic": (bicubic, bicubic),
    "Normalize(0.5, 0.5), tensor resize 64 bicubic": (lambda x: bicubic(transforms.Normalize(*HALF)(x)), bicubic),
    "Normalize(CIFAR-10), tensor resize 64 bicubic": (lambda x: bicubic(transforms.Normalize(*CIFAR10)(x)), bicubic),
    "Normalize(ImageNet), tensor resize 64 bicubic": (lambda x: bicubic(transforms.Normalize(*IMAGENET)(x)), bicubic),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 64, 1])
    args = parser.parse_args()
    nb = definitions(DEVICE="cpu")
    _, _, images, _ = nb.load_cifar10(args.data_dir)
    photos = images[:args.images].float() / 255
    print(f"images (of {len(photos):,}) read more than 0.02 away from their pixels; how the batches were read\n")
    print(f"{'pipeline':<48}" + "".join(f"{f'bs {b}':>8}" for b in args.batch_sizes) + "   read as (batches)")
    for name, (pipeline, truth) in PIPELINES.items():
        x, expected = pipeline(photos), truth(photos)
        cells, readings = [], Counter()
        for batch_size in args.batch_sizes:
            off = 0
            for i in range(0, len(x), batch_size):
                pixels, how = nb.read_images(x[i:i + batch_size])
                off += ((pixels - expected[i:i + batch_size]).abs().flatten(1).amax(1) > 0.02).sum().item()
                readings[how] += 1
            cells.append(off)
        print(f"{name:<48}" + "".join(f"{c:>8}" for c in cells) + "   "
              + "; ".join(f"{how} ({n})" for how, n in readings.most_common()))


if __name__ == "__main__":
    main()
