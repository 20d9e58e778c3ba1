import sys

from .drill import main

sys.exit(main())
