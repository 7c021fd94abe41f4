"""`python -m study.cli`: the `study` command (study.cli.main)."""

import sys

from study.cli.main import main

sys.exit(main())
