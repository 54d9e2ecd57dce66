import sys

from redblue.app.cli import main

sys.exit(main())
