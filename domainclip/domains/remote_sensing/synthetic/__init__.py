"""Synthetic land-cover scenes: georeferenced four-band GeoTIFFs with captions in three languages.

The remote sensing domain trains RS-M-CLIP-style models on captioned scenes and evaluates them on
caption retrieval and zero-shot scene classification. This generator makes small scenes of 10
land-cover classes (:data:`CLASSES`: airport, beach, desert, farmland, forest, highway, industrial,
lake, residential, river) in the public layouts the domain's commands read, so the CPU-quick
recipe and the tests run the real pipeline without downloads.

* :mod:`.canvas`: surface materials with red, green, blue and near-infrared reflectance (water dark
  in the near infrared, vegetation bright), drawn on a supersampled canvas.
* :mod:`.landcover`: one painter per class (parcels with crop rows, street grids with houses,
  runways with markings and planes, dunes, shorelines, rivers, ...) returning the facts it drew.
* :mod:`.captions`: RSICD-style templates written in English, Portuguese and Spanish, filled with
  the facts (class, counts of drawn objects, colours, layout).
* :mod:`.scenes`: illumination, haze, clouds, sensor noise, swath edges and georeferencing (UTM,
  10 m pixels by default), and :func:`generate_scenes`, the ``domainclip prepare remote_sensing
  synthetic`` command.

**Files** (each written atomically)::

    out/images/<class>_NNNNNN.tif             uint16 GeoTIFF, bands R, G, B, NIR, nodata 0
    out/dataset_synthetic.json                 five English captions per scene, Karpathy layout
                                               (RSICD's), train/val/test splits
    out/translations.json                      {language: {English caption: translation}}
    out/scenes/<class>/<class>_NNNNNN.tif      the test split again, one folder per class
    out/scenes.json                            every scene's class, split, georeferencing, facts, captions
    out/synthetic-summary.json                 counts and options
"""

from domainclip.domains.remote_sensing.synthetic.canvas import BANDS, MATERIALS, Canvas
from domainclip.domains.remote_sensing.synthetic.captions import CLASS_NAMES, TEMPLATES, describe
from domainclip.domains.remote_sensing.synthetic.landcover import LAND_COVER
from domainclip.domains.remote_sensing.synthetic.scenes import (
    CAPTION_FILE,
    CLASSES,
    GENERATOR,
    IMAGE_FOLDER,
    LICENCE,
    NODATA,
    REFLECTANCE_SCALE,
    SCENE_FOLDER,
    SUMMARY_FILE,
    TRANSLATION_FILE,
    TRUTH_FILE,
    Scene,
    generate_scenes,
    make_scene,
    tokenize,
)

__all__ = [
    "BANDS",
    "CAPTION_FILE",
    "CLASSES",
    "CLASS_NAMES",
    "GENERATOR",
    "IMAGE_FOLDER",
    "LAND_COVER",
    "LICENCE",
    "MATERIALS",
    "NODATA",
    "REFLECTANCE_SCALE",
    "SCENE_FOLDER",
    "SUMMARY_FILE",
    "TEMPLATES",
    "TRANSLATION_FILE",
    "TRUTH_FILE",
    "Canvas",
    "Scene",
    "describe",
    "generate_scenes",
    "make_scene",
    "tokenize",
]
