"""``python -m pipelines.query ...``: see :mod:`pipelines.query.cli`."""

from __future__ import annotations

import sys

from pipelines.query.cli import main

if __name__ == "__main__":
    sys.exit(main())
