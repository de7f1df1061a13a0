"""The SQLite gallery: persistence, transactions, model isolation, matching, errors."""
from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from app.people.gallery import (
    Gallery,
    GalleryError,
    GalleryLockedError,
    PersonNotFound,
    default_gallery_path,
)
from app.types import Match

MODEL = "facenet-casia512:facenet_fp32"
OTHER = "facenet-casia512:facenet_int8"
T = 0.5  # a cosine threshold; the app's depend on the embedder family (app.stages.embed.FAMILIES)
DIM = 16


def unit(rng, n=1, dim=DIM):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(v, rng, noise=0.05):
    """Vectors close to ``v`` (cosine well above the threshold)."""
    out = v + noise * rng.standard_normal(v.shape).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def crops(n, value=128):
    return [np.full((40, 40, 3), value + i, np.uint8) for i in range(n)]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "sub" / "gallery.sqlite3"


def test_round_trip_across_reopen(path, rng):
    alice, bob = unit(rng, 3), unit(rng, 2)
    with Gallery(path) as gallery:
        assert gallery.add_samples("Alice", alice, MODEL, crops(3)) == (1, True)
        assert gallery.add_samples("Bob", bob, MODEL, crops(2))[1] is True
    with Gallery(path) as gallery:
        people = {p.name: p for p in gallery.people()}
        assert people["Alice"].samples == 3 and people["Alice"].embeddings == {MODEL: 3}
        assert people["Bob"].embeddings == {MODEL: 2}
        assert gallery.models() == {MODEL: 5}
        queries = np.concatenate([near(alice[:1], rng), near(bob[1:], rng)])
        results = gallery.match(queries, MODEL, T)
        assert [m.name for m in results] == ["Alice", "Bob"]
        assert all(m.similarity > 0.9 for m in results)
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failure_mid_add_stores_nothing(path, rng):
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", unit(rng), MODEL)
    # A real database-level failure on the 2nd sample row of the next enrolment.
    raw = sqlite3.connect(path)
    raw.execute("CREATE TRIGGER fail BEFORE INSERT ON samples "
                "WHEN (SELECT COUNT(*) FROM samples) >= 2 BEGIN SELECT RAISE(ABORT, 'boom'); END")
    raw.commit()
    raw.close()
    with Gallery(path) as gallery:
        with pytest.raises(GalleryError, match="boom"):
            gallery.add_samples("Bob", unit(rng, 3), MODEL, crops(3))
        assert [p.name for p in gallery.people()] == ["Alice"]
        assert gallery.models() == {MODEL: 1}
        with pytest.raises(GalleryError):
            gallery.add_samples("Alice", unit(rng, 2), MODEL)
        assert gallery.people()[0].samples == 1


def test_embeddings_of_another_model_are_never_compared(path, rng):
    alice = unit(rng)
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", alice, MODEL, crops(1))
        assert gallery.match(alice, OTHER, T) == [Match(None, None)]
        assert gallery.match(alice, MODEL, T)[0].name == "Alice"
        missing = gallery.samples_missing_model(OTHER)
        assert [(m.name, m.thumbnail.shape) for m in missing] == [("Alice", (40, 40, 3))]
        assert gallery.samples_missing_model(MODEL) == []
        # re-embed the stored crop with the other model
        other_vec = unit(rng, dim=8)
        assert gallery.add_embeddings([missing[0].sample_id], other_vec, OTHER) == 1
        assert gallery.samples_missing_model(OTHER) == []
        assert gallery.match(other_vec, OTHER, T)[0].name == "Alice"
        assert gallery.people()[0].embeddings == {MODEL: 1, OTHER: 1}
        with pytest.raises(ValueError, match="dimensions"):
            gallery.match(unit(rng, dim=8), MODEL, T)
        with pytest.raises(ValueError, match="dimensions"):
            gallery.add_samples("Bob", unit(rng, dim=8), MODEL)


def test_threshold_separates_known_from_unknown(path, rng):
    alice = unit(rng)
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", alice, MODEL)
        orthogonal = unit(rng)
        orthogonal -= (orthogonal @ alice.T) * alice
        orthogonal /= np.linalg.norm(orthogonal)
        probe = (0.6 * alice + 0.8 * orthogonal).astype(np.float32)  # cosine 0.6 exactly
        match = gallery.match(probe, MODEL, threshold=0.5)[0]
        name, sim = match.name, match.similarity
        assert name == "Alice" and sim == pytest.approx(0.6, abs=1e-5)
        assert gallery.match(probe, MODEL, threshold=0.7)[0] == Match(None, pytest.approx(0.6, abs=1e-5))
        assert gallery.match(orthogonal, MODEL, T)[0].name is None  # cosine 0 < T
        assert gallery.match(np.zeros((0, DIM)), MODEL, T) == []


def test_best_sample_decides_and_each_person_is_scored_by_their_closest_sample(path, rng):
    a1, a2, b = unit(rng), unit(rng), unit(rng)
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", np.concatenate([a1, a2]), MODEL)
        gallery.add_samples("Bob", b, MODEL)
        assert gallery.match(near(a2, rng), MODEL, T)[0].name == "Alice"
        assert gallery.match(near(b, rng), MODEL, T)[0].name == "Bob"


def test_duplicate_name_adds_samples_and_says_so(path, rng):
    with Gallery(path) as gallery:
        person_id, created = gallery.add_samples("Alice", unit(rng, 2), MODEL)
        assert created
        assert gallery.add_samples("  alice ", unit(rng, 3), MODEL) == (person_id, False)
        [alice] = gallery.people()
        assert alice.name == "Alice" and alice.samples == 5


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "a\nb"])
def test_empty_or_control_character_names_are_refused(path, rng, bad):
    with Gallery(path) as gallery:
        with pytest.raises(ValueError):
            gallery.add_samples(bad, unit(rng), MODEL)
        assert gallery.people() == []


def test_rename_remove_and_undo(path, rng):
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", unit(rng, 2), MODEL)
        gallery.add_samples("Bob", unit(rng), MODEL)
        gallery.add_samples("Alice", unit(rng, 3), MODEL)

        gallery.rename("Alice", "Alicia")
        with pytest.raises(ValueError, match="already"):
            gallery.rename("Alicia", "bob")
        gallery.rename("Alicia", "ALICIA")  # a change of case is allowed
        assert [p.name for p in gallery.people()] == ["ALICIA", "Bob"]

        undone = gallery.undo_last_enrolment()  # Alice's second enrolment: she stays
        assert (undone.name, undone.samples, undone.person_removed) == ("ALICIA", 3, False)
        assert gallery.people()[0].samples == 2
        undone = gallery.undo_last_enrolment()  # Bob's only enrolment: he goes
        assert (undone.name, undone.samples, undone.person_removed) == ("Bob", 1, True)
        assert [p.name for p in gallery.people()] == ["ALICIA"]

        assert gallery.remove("alicia") == 2
        assert gallery.people() == [] and gallery.models() == {}
        assert gallery.undo_last_enrolment() is None
        with pytest.raises(PersonNotFound, match="Zed"):
            gallery.remove("Zed")
        with pytest.raises(PersonNotFound):
            gallery.rename("Zed", "Zoe")


def test_corrupt_file_gives_a_clear_error_and_is_left_untouched(tmp_path):
    path = tmp_path / "gallery.sqlite3"
    garbage = np.random.default_rng(1).integers(0, 256, 8192, np.uint8).tobytes()
    path.write_bytes(garbage)
    with pytest.raises(GalleryError, match="gallery.sqlite3"):
        Gallery(path)
    assert path.read_bytes() == garbage


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE notes(text)")
    raw.commit()
    raw.close()
    with pytest.raises(GalleryError, match="not a face gallery"):
        Gallery(path)


def test_locked_database_fails_quickly_with_a_clear_error(path, rng):
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", unit(rng), MODEL)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        with Gallery(path, busy_timeout_s=0.2) as gallery:
            started = time.monotonic()
            with pytest.raises(GalleryLockedError, match="locked"):
                gallery.add_samples("Bob", unit(rng), MODEL)
            assert time.monotonic() - started < 2.0
            assert [p.name for p in gallery.people()] == ["Alice"]  # reads still work (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Gallery(path) as gallery:
        gallery.add_samples("Bob", unit(rng), MODEL)
        assert [p.name for p in gallery.people()] == ["Alice", "Bob"]


def test_another_connection_s_writes_are_seen_by_match(path, rng):
    alice, bob = unit(rng), unit(rng)
    with Gallery(path) as first, Gallery(path) as second:
        first.add_samples("Alice", alice, MODEL)
        assert second.match(bob, MODEL, T)[0].name is None
        first.add_samples("Bob", bob, MODEL)
        assert second.match(bob, MODEL, T)[0].name == "Bob"


def test_default_path_follows_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_gallery_path() == tmp_path / "facelandmarks" / "gallery.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_gallery_path().parts[-4:] == (".local", "share", "facelandmarks",
                                                "gallery.sqlite3")
    assert not (tmp_path / "facelandmarks").exists()  # nothing created


def test_bad_inputs_are_refused(path, rng):
    with Gallery(path) as gallery:
        with pytest.raises(ValueError, match="model_id"):
            gallery.add_samples("Alice", unit(rng), " ")
        with pytest.raises(ValueError, match="thumbnails"):
            gallery.add_samples("Alice", unit(rng, 2), MODEL, crops(1))
        with pytest.raises(ValueError, match=r"\(N, D\)"):
            gallery.add_samples("Alice", unit(rng)[0], MODEL)
        with pytest.raises(ValueError, match="NaN"):
            gallery.add_samples("Alice", np.full((1, DIM), np.nan), MODEL)
        assert gallery.people() == []


def test_a_schema_1_gallery_is_upgraded_and_its_crops_are_five_point(path, rng):
    """Files written before samples named their crop keep working: every old thumbnail
    is taken as the five-point crop (the only one then); new samples record theirs."""
    from app.people.gallery import _SCHEMA

    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(path))
    for statement in _SCHEMA.replace(",\n    crop TEXT", "").split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO people VALUES (1, 'Alice', 0)")
    conn.execute("INSERT INTO enrolments VALUES (1, 1, 0, 1)")
    conn.execute("INSERT INTO samples VALUES (1, 1, 1, 0, NULL)")
    conn.commit()
    conn.close()
    with Gallery(path) as gallery:
        [old] = gallery.samples_missing_model(OTHER)
        assert old.name == "Alice" and old.crop == "five-point"
        gallery.add_samples("Bob", unit(rng), MODEL, crops(1), crop="head-box")
        assert [m.crop for m in gallery.samples_missing_model(OTHER)] == ["five-point", "head-box"]
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()


def test_held_embeddings_are_matched_with_the_stored_ones_and_never_written(path, rng):
    alice, bob, carol = unit(rng, 2), unit(rng, 1), unit(rng, 1)
    with Gallery(path) as gallery:
        gallery.add_samples("Alice", unit(rng, 2, 8), OTHER, crops(2))
        gallery.add_samples("Bob", bob, MODEL, crops(1))
        gallery.add_samples("Carol", unit(rng, 1, 8), OTHER, crops(1))
    before = path.read_bytes()
    with Gallery(path, readonly=True) as gallery:
        missing = gallery.missing_sample_ids(MODEL)
        assert len(missing) == 3                               # Alice's two, Carol's
        assert gallery.hold_embeddings(missing, np.concatenate([alice, carol]), MODEL) == 3
        assert gallery.missing_sample_ids(MODEL) == []
        queries = np.concatenate([near(alice[1:], rng), near(bob, rng), near(carol, rng)])
        assert [m.name for m in gallery.match(queries, MODEL, T)] == ["Alice", "Bob", "Carol"]
        assert gallery.models() == {OTHER: 3, MODEL: 1}        # what is stored, unchanged
        with pytest.raises(ValueError, match="sample ids"):
            gallery.hold_embeddings([1], alice, MODEL)
        assert path.read_bytes() == before
        with Gallery(path) as writer:   # someone else replaces Carol: her sample id is reused
            writer.remove("Carol")
            writer.add_samples("Dave", unit(rng, 1, 8), OTHER, crops(1))
        [carol_again] = gallery.match(near(carol, rng), MODEL, T)
        assert carol_again.name is None                       # not Dave with Carol's vector
        assert len(gallery.missing_sample_ids(MODEL)) == 1    # Dave's sample


def test_a_gallery_whose_folder_does_not_exist_yet_can_be_written(tmp_path):
    """A fresh install: the default gallery's folder is not made until the first enrolment,
    so a run that opened it read-only must still offer live enrolment (key e)."""
    path = tmp_path / "fresh-home" / ".local" / "share" / "facelandmarks" / "gallery.sqlite3"
    with Gallery(path, readonly=True) as gallery:
        assert gallery.can_write()
        assert not path.parent.exists()   # nothing created by looking
