"""How well a submission .pt holds up off the clean CIFAR-10 test set: other sizes, grayscale, natural
photos of another source (a development set), corruptions.

    python bench/robustness.py                          # the committed StudentID_submission.pt, all 10,000 images
    python bench/robustness.py --pt other.pt --images 2000
    python bench/robustness.py --tune-only              # what recipes are chosen on: held-out corruptions skipped

The model and its loader come from the notebook. Everything is computed from the CIFAR-10 test set, with a
fixed seed, nothing downloaded. The corruption suite is ten corruptions at five severities. Its constants
follow CIFAR-10-C (Hendrycks & Dietterich, 2019, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations") where the operation is the same; brightness and saturation act in RGB here, not in HSV.
The corruptions are split in two halves: choose recipes on TUNE only, and report HELD_OUT separately.
HELD_OUT has been scored while recipes were chosen and is no longer unseen, so BLIND adds five corruptions of kinds the
suite lacks (defocus, motion and zoom blur, fog, elastic warping), written and committed before any model was
scored on them: score them once, on a final model, and never choose anything on them.
"""
import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.notebook import REPO, definitions  # noqa: E402

GRAY = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R BT.601 luma
NATURAL = REPO.parent / "shared" / "data" / "shift-dev" / "tinyimagenet7.npz"  # natural shift: a development set


def luma(x):
    return (x * GRAY).sum(1, keepdim=True)


def gaussian_noise(x, sigma, g):
    return x + torch.randn(x.shape, generator=g) * sigma


def shot_noise(x, photons, g):
    return torch.poisson(x * photons, generator=g) / photons


def impulse_noise(x, amount, g):
    u = torch.rand(x.shape, generator=g)
    return torch.where(u < amount / 2, 0.0, torch.where(u > 1 - amount / 2, 1.0, x))


def speckle_noise(x, sigma, g):
    return x + x * torch.randn(x.shape, generator=g) * sigma


def gaussian_blur(x, sigma, g):
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1.0) / sigma) ** 2)
    taps = (taps / taps.sum()).repeat(3, 1, 1, 1)  # 3×1×1×K, one filter per channel
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), taps, groups=3)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), taps.transpose(2, 3), groups=3)


def contrast(x, factor, g):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor + mean


def brightness(x, offset, g):
    return x + offset


def saturate(x, factor, g):
    gray = luma(x)
    return gray + (x - gray) * factor


def jpeg(x, quality, g):
    out = []
    for image in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        PIL.Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out.append(torch.from_numpy(np.array(PIL.Image.open(buffer))))
    return torch.stack(out).permute(0, 3, 1, 2).float() / 255


def pixelate(x, fraction, g):
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(int(h * fraction), int(w * fraction)), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


def blur_kernel(x, taps):
    """x convolved with the K×K kernel `taps` (one per batch, B×K×K, or shared), edges reflected."""
    taps = taps.expand(len(x), -1, -1) if taps.dim() == 3 else taps.expand(len(x), *taps.shape)
    radius = taps.shape[-1] // 2
    padded = F.pad(x, (radius,) * 4, mode="reflect")
    n, c, h, w = x.shape
    out = F.conv2d(padded.reshape(1, n * c, *padded.shape[-2:]),
                   taps.repeat_interleave(c, 0)[:, None], groups=n * c)
    return out.view(n, c, h, w)


def defocus_blur(x, radius_and_alias, g):
    radius, alias = radius_and_alias
    offsets = torch.arange(-2, 3.0)
    disk = ((offsets[:, None] ** 2 + offsets ** 2) <= radius ** 2).float()
    return gaussian_blur(blur_kernel(x, disk / disk.sum()), alias, g)


def motion_blur(x, sigma, g):
    """Gaussian-weighted streak of length 3 sigma behind each pixel, at an angle uniform in ±45° per image."""
    angle = (torch.rand(len(x), generator=g) - 0.5) * (torch.pi / 2)
    steps = torch.arange(int(3 * sigma) + 1.0)
    weights = torch.exp(-0.5 * (steps / sigma) ** 2)
    n, _, h, w = x.shape
    base = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), x.shape, align_corners=False)
    out = torch.zeros_like(x)
    for step, weight in zip(steps, weights):
        shift = torch.stack([angle.cos() * step * 2 / w, angle.sin() * step * 2 / h], 1).view(n, 1, 1, 2)
        out += weight * F.grid_sample(x, base + shift, padding_mode="border", align_corners=False)
    return out / weights.sum()


def zoom_blur(x, max_zoom, g):
    """Mean of the image and its centre enlarged by 1.01, 1.02, … up to max_zoom."""
    zooms = torch.arange(1.01, max_zoom + 1e-6, 0.01)
    n = len(x)
    out = x.clone()
    for zoom in zooms:
        theta = torch.eye(2, 3).expand(n, 2, 3) / zoom
        out += F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)
    return out / (len(zooms) + 1)


def fog(x, strength_and_decay, g):
    """Fractal haze: bilinearly enlarged noise octaves from 2×2 to full size, amplitude ÷ decay per octave."""
    strength, decay = strength_and_decay
    n, _, h, w = x.shape
    haze, amplitude, size = torch.zeros(n, 1, h, w), 1.0, 2
    while size <= max(h, w):
        octave = torch.rand(n, 1, size, size, generator=g) * amplitude
        haze += F.interpolate(octave, size=(h, w), mode="bilinear", align_corners=False)
        amplitude, size = amplitude / decay, size * 2
    low = haze.amin(dim=(2, 3), keepdim=True)
    haze = (haze - low) / (haze.amax(dim=(2, 3), keepdim=True) - low)
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * haze) * top / (top + strength)


def elastic(x, shift_and_smooth, g):
    """Each pixel moved by a smooth random field: white noise blurred with std `smooth` px, scaled to an rms
    displacement of `shift` px."""
    shift, smooth = shift_and_smooth
    n, _, h, w = x.shape
    field = gaussian_blur(torch.randn(n, 3, h, w, generator=g), smooth, g)[:, :2]
    field = field / field.square().mean(dim=(1, 2, 3), keepdim=True).sqrt() * shift
    field = field.permute(0, 2, 3, 1) * torch.tensor([2 / w, 2 / h])
    base = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), x.shape, align_corners=False)
    return F.grid_sample(x, base + field, padding_mode="reflection", align_corners=False)


# name: (function, five severities)
CORRUPTIONS = {
    "gaussian_noise": (gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),   # std on [0, 1]
    "shot_noise": (shot_noise, (500, 250, 100, 75, 50)),                   # photons at full intensity
    "impulse_noise": (impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07)),      # share of salt-and-pepper pixels
    "speckle_noise": (speckle_noise, (0.06, 0.10, 0.12, 0.16, 0.20)),      # multiplicative noise std
    "gaussian_blur": (gaussian_blur, (0.4, 0.6, 0.7, 0.8, 1.0)),           # kernel std in pixels
    "contrast": (contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),                   # factor on the distance to the mean
    "brightness": (brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),               # added to every channel
    "saturate": (saturate, (0.3, 0.1, 1.5, 2.0, 2.5)),                     # factor on the distance to gray
    "jpeg": (jpeg, (80, 65, 58, 50, 40)),                                  # JPEG quality
    "pixelate": (pixelate, (0.95, 0.9, 0.85, 0.75, 0.65)),                 # downscale factor, then nearest up
    "defocus_blur": (defocus_blur, ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),  # disk radius, blur
    "motion_blur": (motion_blur, (1, 1.5, 2, 2.5, 3)),                    # streak std in pixels
    "zoom_blur": (zoom_blur, (1.06, 1.11, 1.16, 1.21, 1.26)),             # largest zoom averaged
    "fog": (fog, ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),  # haze strength, octave decay
    "elastic": (elastic, ((0.5, 2), (0.75, 2), (1, 2), (1.25, 1.5), (1.5, 1.5))),  # rms shift, field smoothness (px)
}
TUNE = ("gaussian_noise", "gaussian_blur", "contrast", "saturate", "jpeg")
HELD_OUT = ("shot_noise", "impulse_noise", "speckle_noise", "brightness", "pixelate")
BLIND = ("defocus_blur", "motion_blur", "zoom_blur", "fog", "elastic")
SIZES = ((24, 24), (40, 40), (64, 64), (96, 96), (32, 48))


def transformed(images, transform, batch_size=500, seed=0):
    """Batches of transform(uint8 images scaled to [0, 1]) clamped to [0, 1], computed on the CPU."""
    g = torch.Generator().manual_seed(seed)
    for i in range(0, len(images), batch_size):
        yield transform(images[i:i + batch_size].float() / 255, g).clamp(0, 1)


def score(model, batches, labels):
    """Accuracy of model on the batches (in order, covering labels), as a percentage."""
    device = next(model.parameters()).device
    correct, seen = 0, 0
    with torch.no_grad():
        for x in batches:
            predictions = model(x.to(device)).argmax(1).cpu()
            correct += (predictions == labels[seen:seen + len(x)]).sum().item()
            seen += len(x)
    return 100 * correct / seen


def resize(h, w):
    return lambda x, g: F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=h < 32)


def grayscale(x, g):
    return luma(x).expand(-1, 3, -1, -1)


def load_natural(path=NATURAL):
    """The natural-shift development set (ImageNet photos of 7 CIFAR-10 classes): uint8 N×3×32×32 images and
    CIFAR-10 labels, or None where the file is absent."""
    if not Path(path).is_file():
        return None
    arrays = np.load(path)
    return torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(arrays["labels"])


def evaluate(model, images, labels, transform, seed=0):
    return score(model, transformed(images, transform, seed=seed), labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path, default=REPO / "StudentID_submission.pt")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--images", type=int, default=10_000, help="the first N test images")
    parser.add_argument("--device", default="cpu", help="where the model runs (the corruptions are made on the CPU)")
    parser.add_argument("--blind", action="store_true", help="also score BLIND (once, on a final model)")
    parser.add_argument("--natural", type=Path, default=NATURAL, help="the natural-shift set (.npz), if present")
    parser.add_argument("--tune-only", action="store_true",
                        help="skip the held-out corruptions (for comparing recipes: 25 of the 58 scores fewer)")
    parser.add_argument("--held-out-only", action="store_true",
                        help="only the clean score and the held-out corruptions (to complete a --tune-only run)")
    args = parser.parse_args()
    if args.blind and (args.tune_only or args.held_out_only):
        parser.error("--blind scores a final model once, on everything: leave out --tune-only and --held-out-only")
    if args.tune_only and args.held_out_only:
        parser.error("--tune-only and --held-out-only exclude each other")

    nb = definitions(DEVICE=args.device)
    model = nb.load_submission(args.pt, args.device)
    _, _, images, labels = nb.load_cifar10(args.data_dir)
    images, labels = images[:args.images], labels[:args.images]
    print(f"{args.pt.name} on the first {len(images):,} CIFAR-10 test images\n")

    clean = evaluate(model, images, labels, lambda x, g: x)
    print(f"{'clean 32×32':<24} {clean:6.2f}")
    for h, w in () if args.held_out_only else SIZES:
        resized = evaluate(model, images, labels, resize(h, w))
        print(f"{f'resized {h}×{w}':<24} {resized:6.2f}  ({resized - clean:+.2f})")
    gray = None if args.held_out_only else evaluate(model, images, labels, grayscale)
    if gray is not None:
        print(f"{'grayscale':<24} {gray:6.2f}  ({gray - clean:+.2f})")
    natural = None if args.held_out_only else load_natural(args.natural)
    if natural:
        print(f"{f'natural shift ({len(natural[1]):,})':<24} {evaluate(model, *natural, lambda x, g: x):6.2f}  "
              f"({args.natural.name}, all of it)")
    print()

    print(f"{'corruption':<16}" + "".join(f"{f's{s}':>7}" for s in range(1, 6)) + f"{'mean':>8}  half")
    means = {}
    for name, (corrupt, severities) in CORRUPTIONS.items():
        if (name in BLIND and not args.blind) or (name in HELD_OUT and args.tune_only) or (
                name in TUNE and args.held_out_only):
            continue
        scores = [evaluate(model, images, labels, lambda x, g: corrupt(x, level, g), seed=s)
                  for s, level in enumerate(severities)]
        means[name] = statistics.mean(scores)
        print(f"{name:<16}" + "".join(f"{a:7.2f}" for a in scores) + f"{means[name]:8.2f}  "
              + ("tune" if name in TUNE else "held-out" if name in HELD_OUT else "blind"), flush=True)
    if args.tune_only or args.held_out_only:
        half = TUNE if args.tune_only else HELD_OUT
        print(f"\ncorruption mean: {'tune' if args.tune_only else 'held-out'} "
              f"{statistics.mean(means[n] for n in half):.2f}")
    else:
        print(f"\ncorruption mean: all {statistics.mean(means[n] for n in TUNE + HELD_OUT):.2f}, "
              f"tune {statistics.mean(means[n] for n in TUNE):.2f}, "
              f"held-out {statistics.mean(means[n] for n in HELD_OUT):.2f}")
    if args.blind:
        print(f"blind {statistics.mean(means[n] for n in BLIND):.2f}, "
              f"all fifteen {statistics.mean(means.values()):.2f}")


if __name__ == "__main__":
    main()
