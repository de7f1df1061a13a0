"""Landmark models loaded on demand or ahead of time, never stalling frames on a key."""
from __future__ import annotations

import threading

import numpy as np

from app.pipeline import LazyModels, Pipeline
from app.stages.track import Tracker
from app.types import Frame


class _Model:
    def predict_many(self, image, boxes):
        return np.zeros((len(boxes), 68, 2), np.float32)


def _pipeline(gate: threading.Event, built: list) -> Pipeline:
    def slow_dlib():
        gate.wait(5)
        built.append("dlib")
        return _Model()

    models = LazyModels({"cnn": _Model, "dlib": slow_dlib})
    return Pipeline(detector=None, landmark_models=models, embedder=None, gallery=None,
                    threshold=0.5, tracker=Tracker())


def _frame(index: int = 0) -> Frame:
    return Frame(index, np.zeros((8, 8, 3), np.uint8), 0.0)


def test_request_of_an_unloaded_mode_loads_it_in_the_background_then_switches():
    gate, built = threading.Event(), []
    pipeline = _pipeline(gate, built)
    assert pipeline.request_landmarks("dlib") is False      # returns at once
    assert pipeline.landmarks == "cnn" and pipeline.requested_landmarks == "dlib"
    pipeline.process(_frame(), [], 0.0)                      # frames keep coming
    assert pipeline.landmarks == "cnn" and built == []
    gate.set()
    pipeline.landmark_models._loading["dlib"].join(5)
    pipeline.process(_frame(1), [], 0.0)
    assert pipeline.landmarks == "dlib" and built == ["dlib"]
    assert pipeline.request_landmarks("both") is True        # loaded: at once


def test_preload_builds_once_and_getitem_waits_for_it():
    gate, built = threading.Event(), []
    models = _pipeline(gate, built).landmark_models
    models.preload("dlib")
    models.preload("dlib")
    assert not models.ready("dlib")
    gate.set()
    assert isinstance(models["dlib"], _Model) and built == ["dlib"]


def test_a_failing_background_load_raises_on_use():
    def broken():
        raise FileNotFoundError("no dlib model: make setup")

    models = LazyModels({"dlib": broken})
    models.preload("dlib")
    models._loading["dlib"].join(5)
    try:
        models["dlib"]
    except FileNotFoundError as exc:
        assert "make setup" in str(exc)
    else:
        raise AssertionError("expected the load error")
