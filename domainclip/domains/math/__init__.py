"""Math domain: synthetic diagram-caption data (MAVIS-style), Geometry3K, zero-shot label spaces.

Importing this package is light; the engine lives in :mod:`domainclip.domains.math.synthetic`,
the ``prepare`` command in :mod:`domainclip.domains.math.prepare`, label spaces and prompt
templates in :mod:`domainclip.domains.math.labels`, and dataset adapters in
:mod:`domainclip.domains.math.datasets`.
"""
