"""domainclip's test suite.

A package, so that ``tests.*`` imports resolve here and not to the top-level ``tests`` package
that another distribution (pubmed-parser) installs into site-packages.
"""
