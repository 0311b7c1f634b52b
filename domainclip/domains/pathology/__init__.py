"""Pathology domain: whole-slide images, tissue detection, patching and PathGen-style patch-caption data.

Importing this package is light; slide reading lives in :mod:`domainclip.domains.pathology.slides`
(OpenSlide with a tiffslide fallback), pyramidal TIFF writing in :mod:`.tiff`, tissue masks in
:mod:`.tissue`, patch planning and the ``patches`` prepare command in :mod:`.patching`, and the
PathGen-1.6M import (``pathgen`` prepare command) in :mod:`.pathgen`.
"""
