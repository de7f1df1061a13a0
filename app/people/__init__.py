"""Enrolled people: the SQLite gallery, matching embeddings against it, and enrolment
from photos and from live tracks."""
