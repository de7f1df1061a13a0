"""Re-embedding a gallery for another embedder: the samples only another model embedded
are embedded with the pipeline's embedder, from their stored crops (``Pipeline.sync_gallery``)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..stages.embed import INPUT_SIZE as EMBED_INPUT_SIZE
from .photo_faces import recrop_thumbnail


def sync_gallery(pipeline, batch_size: int = 64,
                 on_batch: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Embed, with ``pipeline``'s embedder, the gallery samples that only another model
    embedded: from their stored crops when made by this embedder's crop rule, else from
    a crop re-cut out of the stored one (``recrop_thumbnail``), never an other-crop
    thumbnail as it is. Returns (re-embedded, left out: no crop or no face in it).

    Streams ``batch_size`` crops at a time, each batch stored in its own transaction:
    memory stays flat for any gallery size, and an interrupted sync resumes where it
    stopped (samples already done are no longer missing). ``on_batch(n)`` after each.
    A gallery that cannot be written (a read-only folder) holds the vectors in memory
    for this run instead (``Gallery.hold_embeddings``)."""
    gallery, model_id = pipeline.gallery, pipeline.model_id
    ids = gallery.missing_sample_ids(model_id)
    done = lost = 0
    for start in range(0, len(ids), batch_size):
        batch = gallery.samples_by_id(ids[start:start + batch_size])
        usable = [(m.sample_id, crop) for m in batch
                  if (crop := _stored_crop(pipeline, m)) is not None]
        if usable:
            vectors = pipeline.embedder.embed(np.stack([crop for _, crop in usable]))
            keep = (gallery.add_embeddings if gallery.can_write()
                    else gallery.hold_embeddings)   # read-only: for this run
            keep([sid for sid, _ in usable], vectors, model_id)
        done, lost = done + len(usable), lost + len(batch) - len(usable)
        if on_batch is not None:
            on_batch(len(batch))
    return done, lost


def _stored_crop(pipeline, sample) -> np.ndarray | None:
    thumbnail = sample.thumbnail
    if thumbnail is None or thumbnail.shape[:2] != (EMBED_INPUT_SIZE, EMBED_INPUT_SIZE):
        return None
    if sample.crop == pipeline.crop:
        return thumbnail
    return recrop_thumbnail(thumbnail, pipeline.crop, pipeline.detector,
                            pipeline.landmark_models["cnn"], pipeline.second_detector)
