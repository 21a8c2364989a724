"""``python -m tools.slides``: see ``tools.slides.build``."""

import sys

from tools.slides.build import main

if __name__ == "__main__":
    sys.exit(main())
