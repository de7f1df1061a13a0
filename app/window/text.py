"""Text in any script on a BGR picture: DejaVu Sans through Pillow's FreeType.

OpenCV's Hershey fonts are ASCII only ("José" became "Jos?"); DejaVu Sans covers Latin,
Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic and more. The font file ships in
``assets/fonts/`` (unmodified, from matplotlib's copy; licence in
``assets/fonts/LICENSE_DEJAVU``: Bitstream Vera licence, DejaVu changes public domain).

Each (text, size) is rasterised once into an alpha mask (an LRU cache), so a label drawn
on every frame costs one small alpha blend, not a font render.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..paths import BUILD_COMMAND, FONTS_DIR, INSTALLED

FONT_PATH = FONTS_DIR / "DejaVuSans.ttf"
MIN_PX = 11


def font_px(scale: float) -> int:
    """Pixel size matching a Hershey ``fontScale`` (the size rules the drawing code has)."""
    return max(MIN_PX, int(round(24 * scale)))


@lru_cache(maxsize=32)
def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(FONT_PATH), px)
    except OSError as exc:
        fix = BUILD_COMMAND if INSTALLED else "git checkout -- assets/fonts/"
        raise FileNotFoundError(f"font {FONT_PATH} missing or unreadable ({exc}); "
                                f"restore it: {fix}") from exc


def line_height(px: int) -> int:
    ascent, descent = _font(px).getmetrics()
    return ascent + descent


def ascent(px: int) -> int:
    return _font(px).getmetrics()[0]


@lru_cache(maxsize=4096)
def _mask(text: str, px: int) -> np.ndarray:
    """(line height, width) uint8 coverage of ``text``, top at the font's ascent line."""
    from PIL import Image, ImageDraw

    font = _font(px)
    width = max(1, int(np.ceil(font.getlength(text))) + 1)
    image = Image.new("L", (width, line_height(px)), 0)
    ImageDraw.Draw(image).text((0, 0), text, fill=255, font=font, anchor="la")
    mask = np.asarray(image, np.uint8)
    mask.setflags(write=False)
    return mask


def text_size(text: str, px: int) -> tuple[int, int]:
    """(width, height) of one line of ``text`` at ``px``: height is the line height."""
    mask = _mask(str(text), px)
    return mask.shape[1], mask.shape[0]


def put_text(out: np.ndarray, text: str, origin: tuple[int, int], px: int,
             color: tuple[int, int, int]) -> None:
    """Draw ``text`` into ``out`` (BGR uint8, in place) with its top-left at ``origin``;
    whatever falls outside ``out`` is clipped."""
    mask = _mask(str(text), px)
    x, y = int(origin[0]), int(origin[1])
    h, w = mask.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, out.shape[1]), min(y + h, out.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    alpha = mask[y0 - y:y1 - y, x0 - x:x1 - x, None].astype(np.uint16)
    roi = out[y0:y1, x0:x1]
    ink = np.asarray(color, np.uint16)
    roi[:] = ((roi.astype(np.uint16) * (255 - alpha) + ink * alpha + 127) // 255).astype(np.uint8)
