"""``python -m bot_gateway`` runs the ``bot-gateway`` command."""

import sys

from bot_gateway.cli import main

sys.exit(main())
