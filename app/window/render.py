"""Drawing: every function returns a new BGR image and never modifies its inputs.

Landmark sets for the "both" / side-by-side views travel on the face as
``face.landmark_sets = {"cnn": (68, 2), "dlib": (68, 2)}``; pass
``landmark_colors=LANDMARK_COLORS`` to :func:`draw_faces` to draw each set in its colour.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np

from ..stages.geometry import nme
from ..stages.images import check_bgr_frame
from ..types import (
    JAW,
    LEFT_BROW,
    LEFT_EYE,
    MOUTH_INNER,
    MOUTH_OUTER,
    NOSE_BRIDGE,
    NOSE_TIP,
    RIGHT_BROW,
    RIGHT_EYE,
    Face,
)
from .text import font_px, line_height, put_text, text_size

Color = tuple[int, int, int]  # BGR

# Green and magenta stay distinct for the common red-green colour-vision deficiencies.
LANDMARK_COLORS: dict[str, Color] = {"cnn": (0, 220, 0), "dlib": (255, 0, 255)}
DEFAULT_LANDMARK_COLOR: Color = (0, 220, 0)
KNOWN_COLOR: Color = (0, 200, 0)       # box of a recognised face
UNKNOWN_COLOR: Color = (0, 140, 255)   # matched, but nobody in the gallery is close enough
PENDING_COLOR: Color = (200, 200, 200)  # not matched yet
TEXT_COLOR: Color = (255, 255, 255)
PANEL_COLOR: Color = (0, 0, 0)
PANEL_ALPHA = 0.6

HELP_KEYS: tuple[tuple[str, str], ...] = (
    ("q / Esc", "quit"),
    ("l", "landmarks: cycle cnn / dlib / both"),
    ("s", "side by side: cnn | dlib"),
    ("e", "enrol the clicked face (else the most central, large, sharp one)"),
    ("click", "choose the face to enrol"),
    ("u", "undo this window's last enrolment"),
    ("space", "pause / resume"),
    (". or n", "one frame on (paused)"),
    ("p", "screenshot (PNG)"),
    ("b", "status bar: hide / show"),
    ("h", "show / hide this help"),
)
BAR_COLOR: Color = (32, 32, 32)
HEADER_COLOR: Color = (0, 0, 0)

# (group, closed?) for drawing the 68-point outline.
_GROUPS = ((JAW, False), (RIGHT_BROW, False), (LEFT_BROW, False), (NOSE_BRIDGE, False),
           (NOSE_TIP, False), (RIGHT_EYE, True), (LEFT_EYE, True), (MOUTH_OUTER, True),
           (MOUTH_INNER, True))
_SHIFT = 4  # sub-pixel bits for circles and lines
_ONE = 1 << _SHIFT


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray | None,
                   color: Color = DEFAULT_LANDMARK_COLOR, radius: int | None = None,
                   lines: bool = False) -> np.ndarray:
    """Copy of ``image`` with points (K, 2) drawn; ``lines`` joins the 68-point groups."""
    check_bgr_frame(image)
    out = image.copy()
    _landmarks_into(out, landmarks, color, radius, lines)
    return out


def draw_faces(image: np.ndarray, faces: Sequence[Face],
               landmark_colors: Color | Mapping[str, Color] | None = None,
               show_landmarks: bool = True, lines: bool = False) -> np.ndarray:
    """Copy of ``image`` with each face's box, label (``#id name 0.83``) and landmarks.

    ``landmark_colors``: None draws ``face.landmarks`` in its model's colour (of
    :data:`LANDMARK_COLORS`, by ``face.landmark_model``); a BGR tuple draws it in that
    colour; a mapping such as :data:`LANDMARK_COLORS` draws each named set of
    ``face.landmark_sets`` in its colour (sets a face lacks are skipped). A face with two
    sets also gets their disagreement (NME, 3 decimals) under its box.
    """
    check_bgr_frame(image)
    out = image.copy()
    scale, thickness = _text_scale(out)
    for face in faces:
        if show_landmarks:
            for points, color in _landmark_sets(face, landmark_colors):
                _landmarks_into(out, points, color, None, lines)
        box = np.asarray(face.box, np.float64).reshape(4)
        if not np.all(np.isfinite(box)):
            continue
        box_color = _box_color(face)
        x1, y1, x2, y2 = (int(round(v)) for v in np.clip(box, -1e6, 1e6))
        cv2.rectangle(out, (x1, y1), (x2, y2), box_color, max(1, thickness), cv2.LINE_AA)
        _label_into(out, face_label(face), (x1, y1), box_color, scale, thickness)
        disagreement = face_disagreement(face)
        if disagreement is not None:
            _under_box_into(out, f"NME {disagreement:.3f}", (x1, y2), scale)
    return out


def face_disagreement(face: Face) -> float | None:
    """NME between a face's CNN and dlib points (None unless it has both)."""
    sets = face.landmark_sets
    if sets.get("cnn") is None or sets.get("dlib") is None:
        return None
    return float(nme(sets["dlib"], sets["cnn"]))


def draw_legend(image: np.ndarray, models: Sequence[str],
                colors: Mapping[str, Color] = LANDMARK_COLORS) -> np.ndarray:
    """Copy of ``image`` with a small key of the landmark colours, bottom right."""
    check_bgr_frame(image)
    out = image.copy()
    if not models:
        return out
    px = font_px(_text_scale(out)[0] * 0.8)
    text = "  ".join(models)
    width, height = text_size(" " + text, px)
    dot = height // 3
    full = width + len(models) * (2 * dot + 4) + 8
    x, y = out.shape[1] - full - 4, out.shape[0] - height - 6
    roi = out[max(0, y - 2):y + height + 2, max(0, x):]
    roi[:] = cv2.addWeighted(np.full_like(roi, PANEL_COLOR), PANEL_ALPHA, roi,
                             1.0 - PANEL_ALPHA, 0.0)
    x += 4
    for model in models:
        color = colors.get(model, DEFAULT_LANDMARK_COLOR)
        cv2.circle(out, (x + dot, y + height // 2), dot, color, -1, cv2.LINE_AA)
        x += 2 * dot + 4
        put_text(out, model, (x, y), px, color)
        x += text_size(model + "  ", px)[0]
    return out


def face_label(face: Face) -> str:
    """``#3 Alice 0.83``, ``#3 unknown 0.41`` (or ``#3 unknown`` when the gallery has
    nobody to compare with), ``#3 …`` only while its first match is pending."""
    parts = [] if face.track_id is None else [f"#{face.track_id}"]
    checked = (face.similarity is not None or face.match is not None
               or face.track.checked)
    if face.name is not None:
        parts.append(face.name)
    elif checked:
        parts.append("unknown")
    else:
        parts.append("…")
    if face.similarity is not None:
        parts.append(f"{face.similarity:.2f}")
    return " ".join(parts)


def draw_hud(image: np.ndarray, stats: Mapping[str, object]) -> np.ndarray:
    """Copy of ``image`` with one ``key: value`` line per item of ``stats``, top left.

    Floats get one decimal; a mapping value becomes ``name 4.2`` pairs (per-stage ms);
    a list becomes comma-separated, e.g.::

        {"FPS": 24.3, "latency ms": 38.0, "ms": {"detect": 5.1, "landmarks": 7.9},
         "dropped": 3, "models": ["blazeface", "cnn68", "facenet:int8"]}
    """
    check_bgr_frame(image)
    out = image.copy()
    lines = [f"{key}: {_format_value(value)}" for key, value in stats.items()]
    if lines:
        scale, thickness = _text_scale(out)
        _text_panel_into(out, lines, (0, 0), scale, thickness)
    return out


def draw_status(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Copy of ``image`` with status lines (prompt, progress, messages) at the bottom left."""
    check_bgr_frame(image)
    out = image.copy()
    if lines:
        scale, thickness = _text_scale(out)
        _, h = _panel_size(lines, scale, thickness)
        _text_panel_into(out, lines, (0, max(0, out.shape[0] - h)), scale, thickness)
    return out


def draw_help(image: np.ndarray, keys: Sequence[tuple[str, str]] = HELP_KEYS) -> np.ndarray:
    """Copy of ``image`` with a centred panel listing the keys (key column, then action)."""
    check_bgr_frame(image)
    out = image.copy()
    scale, thickness = _text_scale(out)
    px = font_px(scale)
    gap = text_size("    ", px)[0]
    key_w = max((text_size(k, px)[0] for k, _ in keys), default=0)
    text_w = max((text_size(t, px)[0] for _, t in keys), default=0)
    # The font is proportional: align the action column in pixels (a tab stop).
    lines = ["Keys"] + [f"{k}\t{text}" for k, text in keys]
    w, h = _panel_size([line.replace("\t", " ") for line in lines], scale, thickness)
    w = max(w, key_w + gap + text_w + 2 * max(4, int(8 * scale)))
    origin = (max(0, (out.shape[1] - w) // 2), max(0, (out.shape[0] - h) // 2))
    _text_panel_into(out, lines, origin, scale, thickness, tab=key_w + gap, width=w)
    return out


def side_by_side(image: np.ndarray, faces_cnn: Sequence[Face], faces_dlib: Sequence[Face],
                 ms_cnn: float | None, ms_dlib: float | None, disagreement_nme: float | None,
                 colors: Mapping[str, Color] = LANDMARK_COLORS,
                 titles: tuple[str, str] = ("CNN 68", "dlib 68")) -> np.ndarray:
    """Two panels under a header strip (H + header, 2W, 3): CNN landmarks left, dlib
    right, each face labelled on both with its own disagreement (NME, 3 decimals); the
    header names each panel's model in its colour with its ms/face, and the mean NME."""
    check_bgr_frame(image)
    panels = []
    for faces, key in ((faces_cnn, "cnn"), (faces_dlib, "dlib")):
        color = colors.get(key, DEFAULT_LANDMARK_COLOR)
        panels.append(draw_faces(image, faces, landmark_colors=color))
    out = np.concatenate(panels, axis=1)
    cv2.line(out, (image.shape[1], 0), (image.shape[1], out.shape[0] - 1), TEXT_COLOR, 1)
    mean = "" if disagreement_nme is None else f"   mean NME vs CNN {disagreement_nme:.3f}"
    heads = [(f"{titles[0]}   {_ms_text(ms_cnn)}", colors.get("cnn", DEFAULT_LANDMARK_COLOR)),
             (f"{titles[1]}   {_ms_text(ms_dlib)}{mean}",
              colors.get("dlib", DEFAULT_LANDMARK_COLOR))]
    return np.concatenate([_header(image, heads), out], axis=0)


def header_height(image: np.ndarray) -> int:
    """Height of the side-by-side header strip above a frame like ``image``."""
    return line_height(_header_px(image)) + 2 * _HEADER_PAD


def status_bar(width: int, lines: Sequence[str], rows: int, px: int) -> np.ndarray:
    """A dark strip (outside the picture) of ``rows`` text lines; fewer lines leave room,
    more are cut, so the window does not change size as messages come and go."""
    line_h = line_height(px) + 2
    bar = np.full((rows * line_h + 6, width, 3), BAR_COLOR, np.uint8)
    for i, line in enumerate(list(lines)[:rows]):
        put_text(bar, line, (6, 3 + i * line_h), px, TEXT_COLOR)
    return bar


def bar_px(image: np.ndarray) -> int:
    """Font size of the status bar for a picture like ``image``."""
    size = int(np.clip(round(min(image.shape[:2]) / 360 * 13), 12, 22))
    return max(11, min(size, image.shape[1] // 48))  # three lines of ~90 characters fit


_HEADER_PAD = 4


def _header_px(image: np.ndarray) -> int:
    return bar_px(image) + 1


def _header(image: np.ndarray, heads: Sequence[tuple[str, Color]]) -> np.ndarray:
    width = image.shape[1]
    strip = np.full((header_height(image), width * len(heads), 3), HEADER_COLOR, np.uint8)
    for i, (text, color) in enumerate(heads):
        put_text(strip, text, (i * width + 8, _HEADER_PAD), _header_px(image), color)
    return strip


def _ms_text(ms: float | None) -> str:
    return "" if ms is None else f"{ms:.1f} ms/face"


# -- internals (all draw in place on an image this module owns) ----------------------
def _landmark_sets(face: Face, colors) -> list[tuple[np.ndarray, Color]]:
    if colors is None:
        color = LANDMARK_COLORS.get(face.landmark_model, DEFAULT_LANDMARK_COLOR)
        return [(face.landmarks, color)] if face.landmarks is not None else []
    if isinstance(colors, Mapping):
        sets = face.landmark_sets
        return [(sets[name], color) for name, color in colors.items()
                if sets.get(name) is not None]
    return [(face.landmarks, tuple(colors))] if face.landmarks is not None else []


def _landmarks_into(out: np.ndarray, landmarks, color: Color, radius: int | None,
                    lines: bool) -> None:
    if landmarks is None:
        return
    points = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if radius is None:
        radius = max(1, int(round(min(out.shape[:2]) / 300)))
    finite = np.all(np.isfinite(points), axis=1)
    safe = np.clip(np.where(finite[:, None], points, 0.0), -1e6, 1e6)  # int32 after the shift
    fixed = np.round(safe * _ONE).astype(np.int64)
    if lines and len(points) == 68:
        for group, closed in _GROUPS:
            idx = list(group)
            if finite[idx].all():
                cv2.polylines(out, [fixed[idx].astype(np.int32)], closed, color, 1, cv2.LINE_AA,
                              _SHIFT)
    for (x, y), ok in zip(fixed, finite):
        if ok:
            cv2.circle(out, (int(x), int(y)), radius * _ONE, color, -1, cv2.LINE_AA, _SHIFT)


def _box_color(face: Face) -> Color:
    if face.name is not None:
        return KNOWN_COLOR
    return UNKNOWN_COLOR if face.similarity is not None else PENDING_COLOR


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and thickness that stay readable from 240p to 4K."""
    scale = float(np.clip(image.shape[0] / 900.0, 0.4, 1.5))
    return scale, max(1, int(round(scale * 1.5)))


def _label_into(out: np.ndarray, text: str, corner: tuple[int, int], color: Color, scale: float,
                thickness: int) -> None:
    """Filled tag in ``color`` above the box corner (inside the box when there is no room)."""
    px = font_px(scale)
    w, h = text_size(text, px)
    pad = max(2, h // 6)
    x = int(np.clip(corner[0], 0, max(0, out.shape[1] - w - 2 * pad)))
    top = corner[1] - h - 2 * pad
    if top < 0:
        top = max(0, corner[1])
    cv2.rectangle(out, (x, top), (x + w + 2 * pad - 1, top + h + 2 * pad - 1), color, -1)
    put_text(out, text, (x + pad, top + pad), px, (0, 0, 0))


def _under_box_into(out: np.ndarray, text: str, corner: tuple[int, int], scale: float) -> None:
    """A small dark tag just under a box's bottom-left corner (inside when no room)."""
    px = font_px(scale * 0.85)
    w, h = text_size(text, px)
    x = int(np.clip(corner[0], 0, max(0, out.shape[1] - w - 4)))
    y = corner[1] + 2 if corner[1] + h + 4 <= out.shape[0] else max(0, corner[1] - h - 4)
    cv2.rectangle(out, (x, y), (x + w + 3, y + h + 1), PANEL_COLOR, -1)
    put_text(out, text, (x + 2, y + 1), px, TEXT_COLOR)


def _panel_size(lines: Sequence[str], scale: float, thickness: int) -> tuple[int, int]:
    px = font_px(scale)
    line_h = line_height(px) + max(1, int(3 * scale))
    pad = max(3, int(6 * scale))
    width = max(text_size(line, px)[0] for line in lines)
    return width + 2 * pad, line_h * len(lines) + 2 * pad


def _text_panel_into(out: np.ndarray, lines: Sequence[str], origin: tuple[int, int],
                     scale: float, thickness: int, color: Color = TEXT_COLOR, tab: int = 0,
                     width: int | None = None) -> None:
    """Lines of text on a translucent dark panel whose top-left corner is ``origin``.

    A tab in a line starts the rest of it ``tab`` pixels from the left margin."""
    w, h = _panel_size([line.replace("\t", " ") for line in lines], scale, thickness)
    w = width or w
    x0, y0 = origin
    x1, y1 = min(out.shape[1], x0 + w), min(out.shape[0], y0 + h)
    if x1 > x0 and y1 > y0:
        roi = out[y0:y1, x0:x1]
        shade = np.full_like(roi, PANEL_COLOR)
        out[y0:y1, x0:x1] = cv2.addWeighted(shade, PANEL_ALPHA, roi, 1.0 - PANEL_ALPHA, 0.0)
    pad = max(3, int(6 * scale))
    line_h = (h - 2 * pad) // max(1, len(lines))
    px = font_px(scale)
    for i, line in enumerate(lines):
        for j, part in enumerate(line.split("\t", 1)):
            put_text(out, part, (x0 + pad + j * tab, y0 + pad + i * line_h), px, color)


def _format_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}"
    if isinstance(value, Mapping):
        return "  ".join(f"{k} {_format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    return str(value)
