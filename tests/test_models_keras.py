"""The Keras .h5 -> SavedModel -> frozen .pb chain, and the build's step checks.

Uses the .h5 and the files ``make setup`` built (models/cache, models/facenet_keras)."""
import numpy as np
import pytest

from app.paths import KERAS_SAVED_MODEL
from app.stages.embed import PbEmbedder, prewhiten
from app.toolchain import keras_facenet
from app.toolchain.build import MAX_FLOAT_DIFF, check_step, install
from app.toolchain.faces import aligned_faces


@pytest.fixture(scope="module")
def crops():
    faces = aligned_faces()
    return faces.crops[::14]  # 8 faces of several people


@pytest.fixture(scope="module")
def keras_reference(crops):
    model = keras_facenet.load_h5(keras_facenet.h5_path())
    return keras_facenet.keras_embed(model, prewhiten(crops))


def test_h5_loads_with_every_lambda_replaced(keras_reference):
    assert keras_reference.shape == (8, 128)
    np.testing.assert_allclose(np.linalg.norm(keras_reference, axis=1), 1, atol=1e-5)


def test_saved_model_and_frozen_pb_agree_with_the_h5(crops, keras_reference):
    saved = keras_facenet.saved_model_embed(KERAS_SAVED_MODEL, prewhiten(crops))
    assert np.abs(saved - keras_reference).max() < MAX_FLOAT_DIFF
    embedder = PbEmbedder(family="keras")
    frozen = embedder.embed(crops)
    embedder.close()
    assert np.abs(frozen - keras_reference).max() < MAX_FLOAT_DIFF


def test_a_broken_h5_is_refused_naming_it(tmp_path):
    path = tmp_path / "facenet_keras.h5"
    path.write_bytes(b"not hdf5" * 1000)
    with pytest.raises(ValueError, match="facenet_keras.h5"):
        keras_facenet.load_h5(path)


def test_step_checks_fail_on_real_differences(keras_reference):
    same = keras_reference
    assert check_step("pb", same, keras_reference)[0]
    nudged = same + 2 * MAX_FLOAT_DIFF * np.eye(8, 128, dtype=np.float32)
    assert not check_step("fp32", nudged, keras_reference)[0]  # float step: 2e-4 is too much
    assert check_step("int8", nudged, keras_reference)[0]      # quantised: cosine ~1
    shuffled = keras_reference[::-1]                           # other people's embeddings
    ok, summary = check_step("int8", shuffled, keras_reference)
    assert not ok and "FAILED" in summary


def test_install_moves_a_passing_file_and_deletes_a_failing_one(tmp_path, keras_reference):
    target = tmp_path / "facenet" / "model.tflite"
    target.parent.mkdir()
    target.write_bytes(b"old")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(b"bad")
    assert install(tmp, target, "int8", keras_reference[::-1], keras_reference, 0.0)
    assert not tmp.exists() and target.read_bytes() == b"old"
    tmp.write_bytes(b"good")
    assert install(tmp, target, "int8", keras_reference, keras_reference, 0.0) == []
    assert not tmp.exists() and target.read_bytes() == b"good"
