"""facelandmarks: real-time face landmarks and recognition on an ordinary CPU.

The public API (``app.api``; installed, this package is ``facelandmarks``)::

    import cv2, facelandmarks
    with facelandmarks.Recognizer(gallery="people.db") as rec:
        rec.enroll("Ada Lovelace", ["ada.jpg"])
        faces = rec.faces(cv2.imread("photo.jpg"))     # image mode: no state between calls
    facelandmarks.detect(image); facelandmarks.landmarks(image); facelandmarks.embeddings(image)

Nothing is loaded at import time: every model is opened by the class that wraps it.
Native libraries' INFO logs are turned off before any of them loads (``app.logs``).
"""
from .logs import quiet_defaults

quiet_defaults()

from .api import Face, Recognizer, detect, embeddings, landmarks  # noqa: E402
from .people.enroll import EnrolmentError, PhotoEnrolment  # noqa: E402
from .people.gallery import GalleryError, Person, PersonNotFound  # noqa: E402
from .types import Detection  # noqa: E402

__version__ = "0.2.0"
__all__ = ["Recognizer", "Face", "Detection", "Person", "PhotoEnrolment", "detect",
           "landmarks", "embeddings", "EnrolmentError", "GalleryError", "PersonNotFound"]
