import sys

from services.devstack.stack import main

sys.exit(main())
