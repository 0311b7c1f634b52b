"""Generated object meshes for the multi-view domain: shape categories that look alike from a few viewpoints.

The multi-view domain renders meshes into views and trains CLIP to keep an object's embedding from
any viewpoint. This generator makes small objects of 10 categories built from trimesh primitives
(:data:`CATEGORIES`: can, coin, box, table, cone, pyramid, mug, bottle, dumbbell, chair) in the
ModelNet-style layout ``domainclip prepare multiview render`` reads, so the CPU-quick recipe and the
tests run the real pipeline without downloads. Each category is told apart from most viewpoints and
shares its silhouette with another from a few (:data:`AMBIGUOUS_FROM`: a can seen from above is a
coin's disc, a cone seen from the side is a pyramid's triangle), which is what makes viewpoint
robustness measurable. Colours and surface patterns come from one palette for every category.

* :mod:`.shapes`: one builder per category, with the proportions it draws.
* :mod:`.meshes`: colours, textures, UVs, the three file formats, and :func:`generate_meshes`, the
  ``domainclip prepare multiview synthetic`` command.

**Files** (each written atomically)::

    out/<category>/<object_id>.obj (+ .mtl, .png)   Wavefront OBJ, MTL, PNG texture
    out/<category>/<object_id>.ply                  binary PLY with vertex colours
    out/<category>/<object_id>.glb                  binary glTF, texture embedded
    out/metadata.jsonl                              per object: path, category, license, source, colours, ...
    out/synthetic-summary.json                      counts and options
"""

from domainclip.domains.multiview.synthetic.meshes import (
    FORMATS,
    GENERATOR,
    LICENCE,
    METADATA_FILE,
    PALETTE,
    PATTERNS,
    SOURCE,
    SUMMARY_FILE,
    GeneratedObject,
    generate_meshes,
    make_object,
    make_texture,
)
from domainclip.domains.multiview.synthetic.shapes import AMBIGUOUS_FROM, CATEGORIES, SHAPES, build_parts

__all__ = [
    "AMBIGUOUS_FROM",
    "CATEGORIES",
    "FORMATS",
    "GENERATOR",
    "LICENCE",
    "METADATA_FILE",
    "PALETTE",
    "PATTERNS",
    "SHAPES",
    "SOURCE",
    "SUMMARY_FILE",
    "GeneratedObject",
    "build_parts",
    "generate_meshes",
    "make_object",
    "make_texture",
]
