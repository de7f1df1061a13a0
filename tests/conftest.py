"""Shared fixtures: real data from ../shared/data, read in place.

Tests that need it skip with a clear reason when the folder is absent
(e.g. on a user's machine that only cloned the repo).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from app.paths import SHARED_DATA  # noqa: E402


def shared(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not found: {path} (the shared data folder is absent)")
    return path


@pytest.fixture
def shared_data():
    return shared


@contextmanager
def built_pipeline(gallery_path: Path):
    """The app's default pipeline (real models) over a gallery at ``gallery_path``,
    closed afterwards; module fixtures wrap it so models load once per module."""
    from app.config import RunConfig
    from app.factory import build_pipeline
    from app.people.gallery import Gallery

    gallery = Gallery(gallery_path)
    pipe = build_pipeline(RunConfig(gallery=gallery_path, progress=False), gallery)
    try:
        yield pipe
    finally:
        pipe.close()
        gallery.close()


def cut_short_clip(clip: Path, path: Path) -> Path:
    """``clip``'s video with its index first (faststart), cut off at 300 kB: it opens and
    decodes 160 frames of the Hamilton clip, then the data ends mid-frame."""
    import av

    whole = path.with_suffix(".whole.mp4")
    with av.open(str(clip)) as source, av.open(str(whole), "w",
                                                 options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    path.write_bytes(whole.read_bytes()[:300_000])
    whole.unlink()
    return path
