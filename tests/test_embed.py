"""FaceNet embedders of both families on real aligned photos: identity separation, variant
parity, embedder names, and galleries never mixing the families."""
import numpy as np
import pytest

from app.factory import build_embedder
from app.lab.metrics import cosine_rows, pair_scores, roc_auc
from app.paths import FACENET_FAMILIES, FACENET_VARIANTS, facenet_tflite_path
from app.people.gallery import Gallery
from app.stages.embed import (
    ALIASES,
    EMBEDDERS,
    FAMILIES,
    PbEmbedder,
    TfliteEmbedder,
    prewhiten,
    resolve_embedder,
)
from app.types import Match
from tests.conftest import shared

PEOPLE = ("ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling")
PHOTOS_PER_PERSON = 4


@pytest.fixture(scope="module")
def faces():
    """First few photos of each person from ../shared/data, aligned (HOG + dlib 68)."""
    import cv2

    from app.stages.align import align_face
    from app.stages.detect import HogDetector
    from app.stages.landmarks.dlib68 import Dlib68Landmarks

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
def references(faces):
    """Each family's frozen .pb embeddings of the faces."""
    out = {}
    for family in FACENET_FAMILIES:
        embedder = PbEmbedder(family=family)
        out[family] = embedder.embed(faces[0])
        embedder.close()
    return out


@pytest.mark.parametrize("family", FACENET_FAMILIES)
def test_same_person_is_closer_than_different_people(family, references, faces):
    reference = references[family]
    sims, same = pair_scores(reference, faces[1])
    assert sims[same].mean() > sims[~same].mean() + 0.3
    assert roc_auc(sims, same) > 0.9
    # every face's nearest other face is the same person for most faces
    gram = reference @ reference.T
    np.fill_diagonal(gram, -1)
    nearest_is_same = faces[1][gram.argmax(1)] == faces[1]
    assert nearest_is_same.mean() >= 0.8


@pytest.mark.parametrize("family, dim", [("casia", 512), ("keras", 128)])
def test_embeddings_are_unit_vectors_of_the_family_s_size(family, dim, references):
    assert references[family].shape[1] == dim == FAMILIES[family].dim
    assert references[family].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(references[family], axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("family", FACENET_FAMILIES)
@pytest.mark.parametrize("variant", FACENET_VARIANTS)
def test_tflite_variant_matches_its_family_s_pb(family, variant, faces, references):
    embedder = TfliteEmbedder(facenet_tflite_path(variant, family), family=family)
    cosine = cosine_rows(embedder.embed(faces[0]), references[family])
    assert cosine.mean() >= (0.995 if "int8" in variant else 0.9999)
    assert cosine.min() >= 0.98


def test_the_families_are_different_models(faces, references):
    """Same crops, same variant: different sizes and ids, and the Keras family's own
    preprocessing matters (CASIA's scaling instead of prewhitening changes its output)."""
    casia, keras = (build_embedder(f"{f}-int8") for f in FACENET_FAMILIES)
    assert casia.model_id != keras.model_id
    assert casia.embed(faces[0][:2]).shape == (2, 512) and keras.embed(faces[0][:2]).shape == (2, 128)
    raw = keras._run(FAMILIES["casia"].preprocess(faces[0]))
    wrong = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert cosine_rows(wrong, references["keras"]).mean() < 0.99


def test_prewhiten_gives_each_image_zero_mean_unit_std():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 160, 160, 3), np.uint8)
    crops[2] = 7  # a flat image: std floored at 1/sqrt(pixels), no division by zero
    out = prewhiten(crops)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out[:2].std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert np.all(out[2] == 0)


@pytest.mark.parametrize("name, family, variant", [
    ("keras-int8", "keras", "int8"), ("casia-pb", "casia", "pb"), ("keras-fp16", "keras", "fp16"),
    ("int8", "casia", "int8"), ("pb", "casia", "pb"),   # the names from before two families
])
def test_embedder_names(name, family, variant):
    assert resolve_embedder(name) == (FAMILIES[family], variant)


def test_every_name_is_listed_and_unknown_names_are_refused():
    assert len(EMBEDDERS) == 10 and set(ALIASES.values()) <= set(EMBEDDERS)
    with pytest.raises(ValueError, match="keras-int8"):
        resolve_embedder("keras-int4")
    with pytest.raises(ValueError, match="unknown FaceNet family"):
        facenet_tflite_path("int8", "vgg")


def test_old_bare_names_keep_their_gallery_model_id():
    assert build_embedder("int8").model_id == "facenet-casia512:facenet_int8@head-box"
    assert build_embedder("casia-int8").model_id == "facenet-casia512:facenet_int8@head-box"


def test_a_gallery_enrolled_with_one_family_never_matches_the_other(tmp_path, faces):
    crops, labels = faces
    enrolled = {f: build_embedder(f"{f}-int8") for f in FACENET_FAMILIES}
    for enrol_family, query_family in (("keras", "casia"), ("casia", "keras")):
        with Gallery(tmp_path / f"{enrol_family}.sqlite3") as gallery:
            by, query = enrolled[enrol_family], enrolled[query_family]
            gallery.add_samples(labels[0], by.embed(crops[:2]), by.model_id, list(crops[:2]))
            # the very same photos, embedded by the other family: nothing to compare with
            assert gallery.match(query.embed(crops[:2]), query.model_id, -1.0) == [Match(None, None)] * 2
            assert gallery.samples_missing_model(query.model_id)  # left to re-embed
            # while the enrolling family recognises them
            names = [m.name for m in gallery.match(by.embed(crops[:2]), by.model_id, 0.9)]
            assert names == [labels[0]] * 2


def test_batch_equals_one_by_one(faces):
    embedder = TfliteEmbedder(facenet_tflite_path("fp32", "keras"), family="keras")
    batch = embedder.embed(faces[0][:3])
    single = np.concatenate([embedder.embed(crop[None]) for crop in faces[0][:3]])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert embedder.embed(np.zeros((0, 160, 160, 3), np.uint8)).shape == (0, 128)


@pytest.mark.parametrize("family", FACENET_FAMILIES)
def test_pb_handles_a_batch(family, faces, references):
    embedder = PbEmbedder(family=family)
    single = embedder.embed(faces[0][:1])
    embedder.close()
    np.testing.assert_allclose(single[0], references[family][0], atol=1e-5)


@pytest.mark.parametrize("family", FACENET_FAMILIES)
@pytest.mark.parametrize("bad, message", [
    (np.zeros((160, 160, 3), np.uint8), "batch"),
    (np.zeros((1, 112, 112, 3), np.uint8), "160, 160, 3"),
    (np.zeros((1, 160, 160, 3), np.float32), "uint8"),
])
def test_bad_crops_are_refused(family, bad, message):
    with pytest.raises(ValueError, match=message):
        TfliteEmbedder(facenet_tflite_path("int8", family), family=family).embed(bad)


def test_missing_model_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup"):
        TfliteEmbedder(tmp_path / "facenet_int8.tflite")
    with pytest.raises(FileNotFoundError, match="models build"):
        PbEmbedder(tmp_path / "frozen.pb", family="keras")


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
