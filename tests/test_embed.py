"""FaceNet embedders on real aligned photos: identity separation and variant parity."""
import numpy as np
import pytest

from app.embed import PbEmbedder, TfliteEmbedder
from app.metrics import cosine_rows, pair_scores, roc_auc
from app.paths import FACENET_VARIANTS, facenet_tflite_path
from tests.conftest import shared

PEOPLE = ("ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling")
PHOTOS_PER_PERSON = 4


@pytest.fixture(scope="module")
def faces():
    """First few photos of each person from ../shared/data, aligned (HOG + dlib 68)."""
    from app.align import align_face
    from app.detect import HogDetector
    from app.landmarks.dlib68 import Dlib68Landmarks
    import cv2

    root = shared("identities", "5-celebrity", "train")
    detector, landmarker = HogDetector(), Dlib68Landmarks()
    crops, labels = [], []
    for person in PEOPLE:
        for photo in sorted((root / person).glob("*.jpg")):
            image = cv2.imread(str(photo))
            found = detector.detect(image)
            if len(found) == 1:
                crops.append(align_face(image, landmarker.predict(image, found[0].box)))
                labels.append(person)
            if labels.count(person) == PHOTOS_PER_PERSON:
                break
    return np.array(crops), np.array(labels)


@pytest.fixture(scope="module")
def reference(faces):
    return PbEmbedder().embed(faces[0])


def test_same_person_is_closer_than_different_people(reference, faces):
    sims, same = pair_scores(reference, faces[1])
    assert sims[same].mean() > sims[~same].mean() + 0.3
    assert roc_auc(sims, same) > 0.9
    # every face's nearest other face is the same person for most faces
    gram = reference @ reference.T
    np.fill_diagonal(gram, -1)
    nearest_is_same = faces[1][gram.argmax(1)] == faces[1]
    assert nearest_is_same.mean() >= 0.8


def test_embeddings_are_unit_vectors_of_512(reference):
    assert reference.shape[1] == 512 and reference.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("variant", FACENET_VARIANTS)
def test_tflite_variant_matches_the_pb(variant, faces, reference):
    embedder = TfliteEmbedder(facenet_tflite_path(variant))
    cosine = cosine_rows(embedder.embed(faces[0]), reference)
    assert cosine.mean() >= (0.995 if "int8" in variant else 0.9999)
    assert cosine.min() >= 0.98


def test_batch_equals_one_by_one(faces):
    embedder = TfliteEmbedder(facenet_tflite_path("fp32"))
    batch = embedder.embed(faces[0][:3])
    single = np.concatenate([embedder.embed(crop[None]) for crop in faces[0][:3]])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert embedder.embed(np.zeros((0, 160, 160, 3), np.uint8)).shape == (0, 512)


def test_pb_handles_a_batch(faces, reference):
    single = PbEmbedder().embed(faces[0][:1])
    np.testing.assert_allclose(single[0], reference[0], atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((160, 160, 3), np.uint8), "batch"),
    (np.zeros((1, 112, 112, 3), np.uint8), "160, 160, 3"),
    (np.zeros((1, 160, 160, 3), np.float32), "uint8"),
])
def test_bad_crops_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        TfliteEmbedder(facenet_tflite_path("int8")).embed(bad)


def test_missing_model_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup"):
        TfliteEmbedder(tmp_path / "facenet_int8.tflite")


def test_corrupt_model_names_its_path(tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"not a flatbuffer" * 100)
    with pytest.raises(ValueError, match="broken.tflite"):
        TfliteEmbedder(path)


def test_corrupt_pb_names_its_path(tmp_path):
    path = tmp_path / "broken.pb"
    path.write_bytes(b"\xff\x00garbage" * 100)
    with pytest.raises(ValueError, match="broken.pb"):
        PbEmbedder(path)
