"""The stages: one model or one job each (detect, landmarks, align, embed, track, smooth,
cuts) and the small helpers they share (geometry, vectors, images). Stages import only
each other and ``types`` / ``config`` / ``paths``; they know nothing of sources, outputs,
the window or the gallery."""
