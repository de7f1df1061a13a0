"""``who`` and ``relabel``: answers from the index alone, no video decoded.

``who NAME --index DIR``: the person's appearances (file, start_s, end_s, best_s,
similarity), one per line, or one JSON object per line with ``--json``. ``who --photo
PHOTO``: the same for the face in a photo, enrolled or not (its embedding against every
row's, at the index's threshold; only the photo is run through the models).
``relabel --index DIR --gallery G``: the stored track embeddings named again against the
gallery (after enrolling someone new), appearances.parquet rewritten in place.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..config import EXIT_OK
from .appearances import DEFAULT_GAP_S, appearances_of, label
from .folder import IndexFolder, with_names

WHO_COLUMNS = ["file", "track", "start_s", "end_s", "best_s", "person", "similarity"]


def run_who(index: Path, name: str | None, as_json: bool = False,
            gap_s: float = DEFAULT_GAP_S, thumbnails: Path | None = None,
            photo: Path | None = None) -> int:
    folder = IndexFolder(index)
    if photo is not None:
        name = f"photo:{Path(photo).name}"
        table = rows_like(folder, photo, name)
    else:
        table = folder.read_appearances(columns=WHO_COLUMNS)
    found = appearances_of(table.to_pylist(), name, gap_s)
    if thumbnails is not None and found:
        write_thumbnails(folder, found, Path(thumbnails))
    for appearance in found:
        if as_json:
            print(json.dumps(appearance.as_json()))
        else:
            print(f"{appearance.file}\t{appearance.start_s:.2f}-{appearance.end_s:.2f} s\t"
                  f"best {appearance.best_s:.2f} s\tsimilarity {appearance.similarity:.3f}")
    if not found:
        people = sorted({p for p in table.column("person").to_pylist() if p})
        print(f"no appearances of {name!r} in {index} (named there: "
              f"{', '.join(people) or 'nobody'}; enrol them, then relabel)", file=sys.stderr)
    return EXIT_OK


def rows_like(folder: IndexFolder, photo: Path, name: str):
    """The index's rows, each named ``name`` where its embedding is as close to the
    photo's face as the index's threshold asks (similarity: to the photo)."""
    info = folder.info()
    vector, model_id = photo_embedding(Path(photo), info)
    table = folder.read_appearances(columns=[*WHO_COLUMNS, "embedding", "model_id"])
    names, sims = [], []
    for row_model, embedding in zip(table.column("model_id").to_pylist(),
                                    table.column("embedding").to_pylist()):
        similarity = float(np.dot(embedding, vector)) if row_model == model_id else None
        sims.append(similarity)
        names.append(name if similarity is not None and similarity >= info["threshold"]
                     else None)
    return with_names(table, names, sims)


def photo_embedding(photo: Path, info: dict) -> tuple[np.ndarray, str]:
    """The embedding of a photo's main face, by the index's own models."""
    import tempfile

    from ..config import RunConfig
    from ..factory import build_pipeline
    from ..people.enroll import photo_face, read_photo
    from ..people.gallery import Gallery

    image = read_photo(photo)
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "nobody.sqlite3"   # read-only: never created
        with Gallery(empty, readonly=True) as gallery:
            pipeline = build_pipeline(RunConfig(source="", detector=info["detector"],
                                                embedder=info["embedder"], gallery=empty,
                                                headless=True, progress=False), gallery)
            try:
                face = photo_face(image, pipeline.detector, pipeline.landmarker, photo,
                                  pick="main", crop=pipeline.crop,
                                  second=pipeline.second_detector)
                if face is None:
                    raise ValueError(f"{photo}: no face found")
                return pipeline.embedder.embed(face.aligned[None])[0], pipeline.model_id
            finally:
                pipeline.close()


def write_thumbnails(folder: IndexFolder, found: list, out: Path) -> None:
    """Each appearance's best face as ``NNN_<video name>_<start>s.jpg`` in ``out``."""
    import pyarrow.compute as pc

    wanted = {(a.file, a.best_track) for a in found}
    table = folder.read_appearances(columns=["file", "track", "thumbnail"])
    table = table.filter(pc.is_in(table.column("file"),
                                  value_set=pa_strings(sorted({f for f, _ in wanted}))))
    jpegs = {(r["file"], r["track"]): r["thumbnail"] for r in table.to_pylist()
             if (r["file"], r["track"]) in wanted}
    out.mkdir(parents=True, exist_ok=True)
    for number, appearance in enumerate(found, 1):
        path = out / f"{number:03d}_{Path(appearance.file).stem}_{appearance.start_s:.1f}s.jpg"
        path.write_bytes(jpegs.get((appearance.file, appearance.best_track), b""))
        appearance.thumbnail = str(path)


def pa_strings(values: list[str]):
    import pyarrow as pa
    return pa.array(values, pa.string())


def run_relabel(index: Path, gallery: Path) -> int:
    folder = IndexFolder(index)
    folder.info()   # not an index: refused before anything is made
    with folder.writing():
        return _relabel(folder, Path(gallery))


def _relabel(folder: IndexFolder, gallery: Path) -> int:
    from .run import naming_gallery

    table = folder.read_appearances()
    before = table.column("person").to_pylist()
    names, sims = [], []
    if table.num_rows:
        vectors = np.stack([np.asarray(v, np.float32)
                            for v in table.column("embedding").to_pylist()])
        with naming_gallery(gallery, folder) as opened:
            names, sims = label(vectors, table.column("model_id").to_pylist(), opened,
                                folder.info()["threshold"])
    folder.write_appearances(with_names(table, names, sims))
    changed = sum(1 for old, new in zip(before, names) if old != new)
    people = sorted({p for p in names if p})
    print(f"relabelled {table.num_rows} tracks in {folder.appearances} against {gallery}: "
          f"{changed} changed; named: {', '.join(people) or 'nobody'}")
    return EXIT_OK
