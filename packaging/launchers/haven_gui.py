"""The frozen ``haven`` executable: the desktop app, the same entry point as the installed command."""

import sys

from ui.app import main

sys.exit(main())
