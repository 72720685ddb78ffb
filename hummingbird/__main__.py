import sys

from hummingbird.cli import main

sys.exit(main())
