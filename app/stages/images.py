"""Checks shared by every model wrapper: a frame is (H, W, 3) uint8 BGR."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np


def check_bgr_frame(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an image of shape (H, W, 3) BGR, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8 (BGR 0..255), got {image.dtype}")


def check_box(box) -> np.ndarray:
    """Return ``box`` as a (4,) float32 x1, y1, x2, y2 array, or raise ValueError."""
    arr = np.asarray(box, dtype=np.float32).reshape(-1)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected a box [x1, y1, x2, y2], got {box!r}")
    if arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {arr.tolist()}")
    return arr


# -- reading image files ---------------------------------------------------------------------
MAX_PIXELS = 50_000_000   # 50 MP: a 30000x30000 PNG of 2.7 MB would need 2.7 GB decoded


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file and why."""


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The BGR uint8 pixels of an image file (decoded by OpenCV, like video frames), or
    ImageFileError.

    The size is read from the header and checked against ``max_pixels`` before anything is
    decoded. Pillow then decodes the whole file once to check it: it refuses a truncated or
    damaged file ("image file is truncated") where OpenCV only warns on stderr and returns
    the missing part grey; any decoder warning is an error too."""
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise ImageFileError(f"{path} is a folder, not an image file")
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # DecompressionBombWarning, odd chunks, EXIF
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageFileError(
                        f"{path}: {width}x{height} is {_megapixels(width * height, max_pixels)} megapixels, "
                        f"over the limit of {max_pixels / 1e6:g} megapixels; scale it down first "
                        f"(e.g. to 4000 pixels wide)")
                image.load()
    except ImageFileError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{_megapixels(int(pixels.group(1)), max_pixels)} megapixels, " if pixels else ""
        raise ImageFileError(f"{path}: {size}over the limit of {max_pixels / 1e6:g} megapixels; "
                             f"scale it down first (e.g. to 4000 pixels wide)") from exc
    except PermissionError as exc:
        raise ImageFileError(f"{path}: cannot read it (permission denied); make it readable "
                             f"(chmod u+r) or use a copy you can read") from exc
    except Image.UnidentifiedImageError as exc:
        kind = _unsupported_kind(path)
        if kind:
            raise ImageFileError(f"{path}: {kind} photos are not supported; convert it to JPEG "
                                 f"or PNG first") from exc
        raise ImageFileError(f"{path}: not an image file this app can read (JPEG, PNG, BMP, "
                             f"TIFF, WebP...), or a damaged one") from exc
    except (OSError, SyntaxError, ValueError, Warning, Image.DecompressionBombError) as exc:
        raise ImageFileError(f"{path}: not a readable image ({exc}); the file is truncated, "
                             f"damaged or not an image. Use a complete copy of the photo") from exc
    import cv2
    data = np.fromfile(str(path), dtype=np.uint8)  # also works for non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageFileError(f"{path}: not an image OpenCV can decode (unsupported format); "
                             f"save it as JPEG or PNG")
    return image


def _megapixels(pixels: int, limit: int) -> str:
    """50_400_000 -> "50.4": as many decimals as it takes not to read as the limit (never
    "50 megapixels, over the limit of 50")."""
    for decimals in range(1, 7):
        text = f"{pixels / 1e6:.{decimals}f}"
        if float(text) != limit / 1e6:
            return text
    return f"{pixels / 1e6}"


# ISO base media "ftyp" brands of still-image formats Pillow does not read
_UNSUPPORTED_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC",
                       b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF",
                       b"avis": "AVIF"}


def _unsupported_kind(path: Path) -> str | None:
    """"HEIC" / "HEIF" / "AVIF" when the file's header says it is one, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    return _UNSUPPORTED_BRANDS.get(head[8:12]) if head[4:8] == b"ftyp" else None
