"""``python -m domainclip`` (and ``torchrun ... -m domainclip train RECIPE``)."""

import sys

from domainclip.cli import main

sys.exit(main())
