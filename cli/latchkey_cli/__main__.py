"""``python -m latchkey_cli`` runs the ``latchkey`` command."""

import sys

from latchkey_cli.main import main

sys.exit(main())
