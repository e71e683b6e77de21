"""Carry CIFAR-10 to a machine without internet in under half its size, losslessly.

    python tools/cifar_webp.py pack DATA_DIR OUT_DIR data_batch_1 data_batch_2 ...   # here
    python tools/cifar_webp.py unpack OUT_DIR DATA_DIR                               # there

The pickles hold 184 MB of pixels; xz keeps 76% of that, lossless WebP of a 100×100-image mosaic 55%. That
is what lets the 50,000 training images travel to a GPU machine whose uploads are capped (in two 64 MiB parts).
`unpack` rebuilds the standard cifar-10-batches-py pickles and checks every batch's SHA-256 of pixels and
labels against the packing side, so a lossy or truncated transfer fails loudly.
"""
import hashlib
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import PIL.Image

GRID = 100  # images per mosaic side: 10,000 images per WebP, 3,200×3,200 pixels


def digest(images, labels):
    return hashlib.sha256(images.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()


def pack(data_dir, out_dir, names):
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        with open(data_dir / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry["labels"], dtype=np.int64)
        rows = -(-len(images) // GRID)
        padded = np.zeros((rows * GRID, 3, 32, 32), np.uint8)
        padded[:len(images)] = images
        mosaic = padded.transpose(0, 2, 3, 1).reshape(rows, GRID, 32, 32, 3).transpose(0, 2, 1, 3, 4)
        PIL.Image.fromarray(mosaic.reshape(rows * 32, GRID * 32, 3)).save(
            out_dir / f"{name}.webp", format="WEBP", lossless=True, quality=100, method=4)
        (out_dir / f"{name}.json").write_text(json.dumps(
            {"count": len(images), "labels": labels.tolist(), "sha256": digest(images, labels)}))
        print(f"{name}: {(out_dir / f'{name}.webp').stat().st_size / images.nbytes:.0%} of its pixels", flush=True)


def unpack(packed_dir, data_dir):
    target = data_dir / "cifar-10-batches-py"
    target.mkdir(parents=True, exist_ok=True)
    for meta_path in sorted(packed_dir.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        mosaic = np.asarray(PIL.Image.open(meta_path.with_suffix(".webp")).convert("RGB"))
        rows = mosaic.shape[0] // 32
        images = mosaic.reshape(rows, 32, GRID, 32, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 32, 32, 3)
        images = np.ascontiguousarray(images[:meta["count"]].transpose(0, 3, 1, 2))
        labels = np.asarray(meta["labels"], dtype=np.int64)
        if digest(images, labels) != meta["sha256"]:
            raise SystemExit(f"{meta_path.stem}: the unpacked pixels differ from the packed ones")
        with open(target / meta_path.stem, "wb") as f:
            pickle.dump({"data": images.reshape(len(images), -1), "labels": labels.tolist()}, f)
        print(f"{meta_path.stem}: {len(images):,} images, checksum ok", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "pack":
        pack(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        unpack(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
