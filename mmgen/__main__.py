"""`python -m mmgen ...` is the `mmgen` command."""

import sys

from mmgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
