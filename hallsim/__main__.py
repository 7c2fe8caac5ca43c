import sys

from hallsim.cli import main

sys.exit(main())
