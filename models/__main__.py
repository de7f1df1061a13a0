"""``python -m models <command> [args]``: the model toolchain (``app.toolchain``), run from
a source checkout. Installed, the same commands are ``facelandmarks models <command>``."""
import sys

from app.toolchain.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
