"""User datasets: a folder of images in per-class subfolders, or an ``.npz`` with ``x``/``y``.

Split rules are the zoo's: the test split is either given (``train/`` and ``test/`` subfolders;
``x_test``/``y_test`` arrays) or carved once with a fixed seed (20%), and validation is carved
from train (10%). No search ever sees the test split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from bitswarm.data import SPLIT_SEED, Dataset, Split
from bitswarm.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _carve(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    perm = np.random.default_rng(seed).permutation(len(y))
    n = max(1, int(round(len(y) * fraction)))
    return x[perm[n:]], y[perm[n:]], x[perm[:n]], y[perm[:n]]


def _to_nchw(x: np.ndarray, source: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(f"{source}: field 'x' has dtype {x.dtype}; allowed: uint8 images (0..255)")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 4:
        return x
    raise DataError(f"{source}: field 'x' has shape {x.shape}; allowed: (N,H,W), (N,H,W,C) or (N,C,H,W)")


def _labels(y: np.ndarray, n: int, source: str, key: str) -> np.ndarray:
    """``y`` as int64 class indices, one per image, 0..K-1; else one error naming the file and field."""
    integral = np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and y.size
                                                      and bool(np.all(np.isfinite(y) & (np.mod(y, 1) == 0))))
    if y.ndim != 1 or not integral:
        raise DataError(f"{source}: field '{key}' has shape {y.shape}, dtype {y.dtype}; "
                        f"allowed: one integer class label per image")
    if len(y) != n:
        raise DataError(f"{source}: field '{key}' has {len(y)} labels for {n} images; allowed: equal lengths")
    if y.size and y.min() < 0:
        raise DataError(f"{source}: field '{key}' has label {y.min():g}; allowed: class indices 0..K-1")
    return y.astype(np.int64)


def _make(name: str, xtr, ytr, xte, yte, note: str, fingerprint: str, source: str) -> Dataset:
    if len(ytr) < 2 or not len(yte):  # validation is carved from train: both need a sample
        raise DataError(f"{source}: {len(ytr)} training and {len(yte)} test images; allowed: at least 2 training "
                        f"(train + validation) and 1 test image")
    xtr, ytr, xva, yva = _carve(xtr, ytr, 0.1, SPLIT_SEED)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return Dataset(name, Split(t(xtr), t(ytr).long()), Split(t(xva), t(yva).long()),
                   Split(t(xte), t(yte).long()), note, fingerprint)


def load_npz(path: str | Path) -> Dataset:
    path = Path(path)
    src, arrays = str(path), None
    try:
        arrays = np.load(path)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: a single array, not an .npz archive; allowed keys: x, y, x_test, y_test")
        for key in ("x", "y"):
            if key not in arrays:
                raise DataError(f"{path}: field '{key}' missing; allowed keys: x, y, x_test, y_test")
        if ("x_test" in arrays) != ("y_test" in arrays):
            raise DataError(f"{path}: only one of x_test / y_test; allowed: both or neither")
        data = {k: arrays[k] for k in ("x", "y", "x_test", "y_test") if k in arrays}
    except DataError:
        raise
    except Exception as e:  # not a zip, a truncated member, pickled objects: numpy/zipfile raise many types
        why = (str(e).strip().splitlines() or [""])[0]
        raise DataError(f"{path}: cannot read as .npz ({type(e).__name__}: {why})") from e
    finally:
        if isinstance(arrays, np.lib.npyio.NpzFile):
            arrays.close()
    x = _to_nchw(data["x"], src)
    y = _labels(data["y"], len(x), src, "y")
    if "x_test" in data:
        xte = _to_nchw(data["x_test"], src)
        yte = _labels(data["y_test"], len(xte), src, "y_test")
        if xte.shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: field 'x_test' has images of shape {xte.shape[1:]}; allowed: {x.shape[1:]} "
                            f"(as x)")
    else:
        if len(y) < 3:
            raise DataError(f"{path}: {len(y)} images; allowed: at least 3 (train, validation and test are carved)")
        x, y, xte, yte = _carve(x, y, 0.2, SPLIT_SEED + 1)
    fp = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return _make(path.stem, x, y, xte, yte, f"user arrays {path.name}", fp, src)


#: the most pixels one image of a user's folder may have (PIL warns at 89 M and refuses at 179 M: a
#: decompression bomb); a training image of a CNN bitswarm deploys is far smaller
MAX_IMAGE_PIXELS = 16_000_000


def _read_image(f: Path, Image) -> np.ndarray:
    """One image as an array; a file that is not an image, or one too large, is one error naming it."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{f}: {im.width}x{im.height} pixels; allowed: at most {MAX_IMAGE_PIXELS:,} "
                                    "pixels per image")
                return np.asarray(im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB"))
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{f}: refused as a decompression bomb ({e}); allowed: images of at most "
                        f"{MAX_IMAGE_PIXELS:,} pixels") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"{f}: not a readable image ({type(e).__name__}: {e}); allowed: "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} files that decode") from e


def _read_images(root: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    xs, ys, shape = [], [], None
    for label, cls in enumerate(classes):
        for f in sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            arr = _read_image(f, Image)
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(f"{f}: image size {arr.shape} differs from {shape}; all images must be the same size")
            xs.append(arr)
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class subfolders")
    return _to_nchw(np.stack(xs), str(root)), np.asarray(ys, dtype=np.int64)


def load_image_folder(root: str | Path) -> Dataset:
    root = Path(root)
    split_dirs = (root / "train").is_dir() and (root / "test").is_dir()
    base = root / "train" if split_dirs else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class subfolders; expected {root}/<class>/<image> "
                        f"(optionally under train/ and test/)")
    x, y = _read_images(base, classes)
    if split_dirs:
        xte, yte = _read_images(root / "test", classes)
    else:
        x, y, xte, yte = _carve(x, y, 0.2, SPLIT_SEED + 1)
    fp = hashlib.sha256(b"".join(a.tobytes() for a in (x, y, xte, yte))).hexdigest()[:16]  # the arrays themselves
    return _make(root.name, x, y, xte, yte, f"user images {root.name} ({len(classes)} classes)", fp, str(root))


def load_user_dataset(spec: str | Path) -> Dataset:
    p = Path(spec)
    if p.suffix == ".npz":
        return load_npz(p)
    if p.is_dir():
        return load_image_folder(p)
    raise DataError(f"--dataset {spec}: not a dataset; allowed: mnist, cifar10, a folder of images in per-class "
                    f"subfolders, or an .npz with x/y arrays")
