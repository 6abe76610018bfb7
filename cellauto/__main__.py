import sys

from cellauto.cli import main

sys.exit(main())
