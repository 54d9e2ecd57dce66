import sys

from redblue.cli import main

sys.exit(main())
