"""``python -m app run|enroll|people|demo`` (see app.cli)."""
import sys

from app.cli import main

sys.exit(main())
