"""Run ``open_clip_train.main`` with domainclip's tiny model configs registered (the benchmark peer).

Usage: ``python -m bench.peer_open_clip_train [open_clip_train arguments]``. Importing
:mod:`domainclip.core.models` adds ``dc-*`` configs to open_clip's registry, so ``--model dc-tiny-vit``
builds exactly the architecture domainclip trains. The benchmark runs this in a subprocess whose
``PYTHONPATH`` starts with ``bench/.peer-site`` (webdataset 0.2.86, which open_clip_train 3.3.0 needs).
"""

from __future__ import annotations

import sys

from open_clip_train.main import main

import domainclip.core.models  # noqa: F401  (registers the dc-* model configs into open_clip)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
