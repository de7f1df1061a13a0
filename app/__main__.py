"""``python -m app run|enroll|people|demo`` (see app.cli)."""
import sys

from .cli import main

sys.exit(main())
