import sys

from cellgpt.cli import main

sys.exit(main())
