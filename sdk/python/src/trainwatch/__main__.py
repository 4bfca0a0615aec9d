import sys

from .sync import main

sys.exit(main())
