import sys

from hall_controller.cli import main

sys.exit(main())
