"""``python -m emotivoice``."""

import sys

from emotivoice.cli import main

sys.exit(main())
