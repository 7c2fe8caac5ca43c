import sys

from dispenser.cli import main

sys.exit(main())
