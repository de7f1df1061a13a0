"""Drawing: every function returns a new BGR image and never modifies its inputs.

Landmark sets for the "both" / side-by-side views travel on the face as
``face.landmark_sets = {"cnn": (68, 2), "dlib": (68, 2)}``; pass
``landmark_colors=LANDMARK_COLORS`` to :func:`draw_faces` to draw each set in its colour.
"""
from __future__ import annotations

import unicodedata
from typing import Mapping, Sequence

import cv2
import numpy as np

from app.images import check_bgr_frame
from app.types import (JAW, LEFT_BROW, LEFT_EYE, MOUTH_INNER, MOUTH_OUTER, NOSE_BRIDGE, NOSE_TIP,
                       RIGHT_BROW, RIGHT_EYE, Face)

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
    ("e", "enrol the largest face"),
    ("u", "undo the last enrolment"),
    ("space", "pause / resume"),
    ("h", "show / hide this help"),
)

# (group, closed?) for drawing the 68-point outline.
_GROUPS = ((JAW, False), (RIGHT_BROW, False), (LEFT_BROW, False), (NOSE_BRIDGE, False),
           (NOSE_TIP, False), (RIGHT_EYE, True), (LEFT_EYE, True), (MOUTH_OUTER, True),
           (MOUTH_INNER, True))
_FONT = cv2.FONT_HERSHEY_SIMPLEX
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

    ``landmark_colors``: None draws ``face.landmarks`` in the default colour; a BGR tuple
    draws it in that colour; a mapping such as :data:`LANDMARK_COLORS` draws each named
    set of ``face.landmark_sets`` in its colour (sets a face lacks are skipped).
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
    return out


def face_label(face: Face) -> str:
    """``#3 Alice 0.83``, ``#3 unknown 0.41`` or ``#3 ...`` before any match."""
    parts = [] if face.track_id is None else [f"#{face.track_id}"]
    if face.name is not None:
        parts.append(face.name)
    elif face.similarity is not None:
        parts.append("unknown")
    else:
        parts.append("...")
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
    gap = cv2.getTextSize("    ", _FONT, scale, thickness)[0][0]
    key_w = max((cv2.getTextSize(_ascii(k), _FONT, scale, thickness)[0][0] for k, _ in keys),
                default=0)
    text_w = max((cv2.getTextSize(_ascii(t), _FONT, scale, thickness)[0][0] for _, t in keys),
                 default=0)
    # Hershey fonts are proportional: align the action column in pixels (a tab stop).
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
    """Two panels (H, 2W, 3): CNN landmarks left, dlib right, each with its ms/face,
    and the NME between the two sets along the bottom."""
    check_bgr_frame(image)
    scale, thickness = _text_scale(image)
    panels = []
    for faces, key, title, ms in ((faces_cnn, "cnn", titles[0], ms_cnn),
                                  (faces_dlib, "dlib", titles[1], ms_dlib)):
        panel = image.copy()
        color = colors.get(key, DEFAULT_LANDMARK_COLOR)
        for face in faces:
            box = np.asarray(face.box, np.float64).reshape(4)
            if np.all(np.isfinite(box)):
                x1, y1, x2, y2 = (int(round(v)) for v in np.clip(box, -1e6, 1e6))
                cv2.rectangle(panel, (x1, y1), (x2, y2), PENDING_COLOR, 1, cv2.LINE_AA)
            _landmarks_into(panel, face.landmarks, color, None, False)
        ms_text = "n/a" if ms is None else f"{ms:.1f} ms/face"
        _text_panel_into(panel, [f"{title}: {ms_text}"], (0, 0), scale, thickness, color)
        panels.append(panel)
    out = np.concatenate(panels, axis=1)
    cv2.line(out, (image.shape[1], 0), (image.shape[1], out.shape[0] - 1), TEXT_COLOR, 1)
    nme = "n/a" if disagreement_nme is None else f"{disagreement_nme:.3f}"
    text = f"disagreement (NME, outer-eye-corner normalised): {nme}"
    w, h = _panel_size([text], scale, thickness)
    _text_panel_into(out, [text], (max(0, (out.shape[1] - w) // 2), out.shape[0] - h), scale,
                     thickness)
    return out


# -- internals (all draw in place on an image this module owns) ----------------------
def _landmark_sets(face: Face, colors) -> list[tuple[np.ndarray, Color]]:
    if colors is None:
        return [(face.landmarks, DEFAULT_LANDMARK_COLOR)] if face.landmarks is not None else []
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
    text = _ascii(text)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, h // 4)
    x = int(np.clip(corner[0], 0, max(0, out.shape[1] - w - 2 * pad)))
    top = corner[1] - h - base - 2 * pad
    if top < 0:
        top = max(0, corner[1])
    cv2.rectangle(out, (x, top), (x + w + 2 * pad, top + h + base + 2 * pad), color, -1)
    cv2.putText(out, text, (x + pad, top + pad + h), _FONT, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)


def _panel_size(lines: Sequence[str], scale: float, thickness: int) -> tuple[int, int]:
    sizes = [cv2.getTextSize(_ascii(line), _FONT, scale, thickness) for line in lines]
    line_h = max(h + b for (_, h), b in sizes) + max(3, int(6 * scale))
    pad = max(4, int(8 * scale))
    return max(w for (w, _), _ in sizes) + 2 * pad, line_h * len(lines) + 2 * pad


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
    pad = max(4, int(8 * scale))
    line_h = (h - 2 * pad) // max(1, len(lines))
    for i, line in enumerate(lines):
        (_, th), _ = cv2.getTextSize(_ascii(line.replace("\t", " ")), _FONT, scale, thickness)
        y = y0 + pad + i * line_h + th
        for j, part in enumerate(line.split("\t", 1)):
            cv2.putText(out, _ascii(part), (x0 + pad + j * tab, y), _FONT, scale, color,
                        thickness, cv2.LINE_AA)


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


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts are ASCII only: drop accents, replace the rest with '?'."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    return "".join(ch if ord(ch) < 128 else "?" for ch in decomposed
                   if not unicodedata.combining(ch))
