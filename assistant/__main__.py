"""``python -m assistant`` is ``haven-cli``."""

import sys

from assistant.cli import main

sys.exit(main())
