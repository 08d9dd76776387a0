"""The frozen ``haven-cli`` executable: the headless commands, the same entry point as the installed command."""

import sys

from assistant.cli.main import main

sys.exit(main())
