"""Appearances: one row per face track of a file, from the frames a worker tracked.

:class:`TrackBook` follows the tracker's ids through one file. A track becomes a
*segment* (a row); a track whose box leapt (the tracker's "jump" event: likely another
face took its place) starts a new segment, so one row never holds two people. Per
segment: the first and last media time it was seen (``start_s``, ``end_s``), the best
frame (detector score x box width, ``best_s``, with a small JPEG thumbnail of the face),
and the mean of its embeddings (unit length), which is what names it: see
:func:`label`, the one naming rule for ``index`` and ``relabel``.

Tracks are numbered 1, 2, ... per file in order of appearance, whichever worker ran it
and whatever it ran before, so two backends give identical rows.

:func:`appearances_of` is ``who``: rows of one person, with the rows of the same file
less than ``gap_s`` apart joined into one appearance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

THUMBNAIL_SIZE = 96          # the longer side, pixels
THUMBNAIL_MARGIN = 0.2       # of the box size, each side
THUMBNAIL_JPEG_QUALITY = 85
DEFAULT_GAP_S = 1.0          # who: rows of one person closer than this are one appearance


@dataclass
class Segment:
    """One track (or the part of it after a jump) in one file."""
    track: int
    start_s: float
    end_s: float
    frames: int = 0
    embedded: int = 0
    vector_sum: np.ndarray | None = None
    best_s: float = 0.0
    best_quality: float = -1.0
    best_crop: np.ndarray | None = None

    def embedding(self) -> np.ndarray | None:
        if self.vector_sum is None:
            return None
        norm = float(np.linalg.norm(self.vector_sum))
        return (self.vector_sum / norm).astype(np.float32) if norm > 0 else None


@dataclass
class TrackBook:
    """Segments of one file, fed one frame's faces at a time (after the pipeline)."""
    segments: list[Segment] = field(default_factory=list)
    _open: dict[int, Segment] = field(default_factory=dict)

    def add(self, time_s: float, image: np.ndarray, faces) -> None:
        for face in faces:
            segment = self._open.get(face.track_id)
            if segment is None or face.track.event == "jump":
                segment = Segment(len(self.segments) + 1, time_s, time_s)
                self.segments.append(segment)
                self._open[face.track_id] = segment
            segment.end_s = time_s
            segment.frames += 1
            if face.embedding is not None and face.embedding.size:
                vector = np.asarray(face.embedding, np.float64)
                segment.vector_sum = (vector if segment.vector_sum is None
                                      else segment.vector_sum + vector)
                segment.embedded += 1
            box = np.asarray(face.box, np.float32)
            quality = float(face.score) * float(box[2] - box[0])
            if quality > segment.best_quality:
                segment.best_quality, segment.best_s = quality, time_s
                segment.best_crop = face_crop(image, box)

    def rows(self, file: str, model_id: str) -> list[dict]:
        """Plain rows (the parquet columns but person and similarity) of the segments
        that were embedded at least once."""
        rows = []
        for s in self.segments:
            vector = s.embedding()
            if vector is None:
                continue
            rows.append({"file": file, "track": s.track, "start_s": s.start_s,
                         "end_s": s.end_s, "best_s": s.best_s, "frames": s.frames,
                         "embedded": s.embedded, "thumbnail": jpeg(s.best_crop),
                         "embedding": vector, "model_id": model_id})
        return rows


def face_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face box with a margin, clipped to the frame, at most THUMBNAIL_SIZE px."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * THUMBNAIL_MARGIN, (y2 - y1) * THUMBNAIL_MARGIN
    h, w = image.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    crop = image[top:max(bottom, top + 1), left:max(right, left + 1)]
    scale = THUMBNAIL_SIZE / max(crop.shape[:2])
    if scale < 1:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


def jpeg(image: np.ndarray | None) -> bytes:
    if image is None or image.size == 0:
        return b""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY])
    return data.tobytes() if ok else b""


# -- naming ------------------------------------------------------------------------------
def label(vectors: np.ndarray, model_ids: list[str], gallery,
          threshold: float) -> tuple[list[str | None], list[float | None]]:
    """Each row's person (None: unknown) and cosine to the best enrolled person, from its
    mean embedding against ``gallery`` (only vectors of the row's own model are compared).
    The one naming rule of ``index`` and ``relabel``."""
    names: list[str | None] = [None] * len(model_ids)
    sims: list[float | None] = [None] * len(model_ids)
    for model_id in sorted(set(model_ids)):
        rows = [i for i, m in enumerate(model_ids) if m == model_id]
        for row, match in zip(rows, gallery.match(vectors[rows], model_id, threshold)):
            names[row] = match.name
            sims[row] = None if match.similarity is None else round(match.similarity, 6)
    return names, sims


# -- who -----------------------------------------------------------------------------------
@dataclass
class Appearance:
    """One person in one file from ``start_s`` to ``end_s`` (joined rows)."""
    file: str
    person: str
    start_s: float
    end_s: float
    best_s: float
    similarity: float
    tracks: list[int]
    best_track: int = 0             # the row whose best frame and similarity are kept
    thumbnail: str | None = None    # who --thumbnails: where its JPEG was written

    def as_json(self) -> dict:
        found = {"file": self.file, "person": self.person, "start_s": round(self.start_s, 3),
                 "end_s": round(self.end_s, 3), "best_s": round(self.best_s, 3),
                 "similarity": round(self.similarity, 4), "tracks": self.tracks}
        return found if self.thumbnail is None else {**found, "thumbnail": self.thumbnail}


def appearances_of(rows: list[dict], name: str, gap_s: float = DEFAULT_GAP_S
                   ) -> list[Appearance]:
    """The appearances of ``name`` (any case) in ``rows`` (appearances.parquet as dicts),
    by file and time; rows of one file less than ``gap_s`` apart are joined, keeping the
    best-matching row's ``best_s`` and similarity."""
    wanted = name.casefold()
    mine = sorted((r for r in rows if r["person"] and r["person"].casefold() == wanted),
                  key=lambda r: (r["file"], r["start_s"], r["track"]))
    found: list[Appearance] = []
    for row in mine:
        last = found[-1] if found else None
        if last and last.file == row["file"] and row["start_s"] - last.end_s <= gap_s:
            last.end_s = max(last.end_s, row["end_s"])
            last.tracks.append(row["track"])
            if row["similarity"] > last.similarity:
                last.similarity, last.best_s = row["similarity"], row["best_s"]
                last.best_track = row["track"]
            continue
        found.append(Appearance(row["file"], row["person"], row["start_s"], row["end_s"],
                                row["best_s"], row["similarity"], [row["track"]],
                                best_track=row["track"]))
    return found
