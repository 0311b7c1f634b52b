"""Dataset adapters of the pathology domain, one public layout per module.

* :class:`~domainclip.domains.pathology.datasets.folder.PatchFolder`: class-per-folder patch sets
  such as NCT-CRC-HE-100K and CRC-VAL-HE-7K (``root/ADI/*.tif``, ...).
* :class:`~domainclip.domains.pathology.datasets.pcam.PatchCamelyon`: PatchCamelyon's official
  HDF5 files, read lazily (``h5py`` is imported on first use).
* :func:`~domainclip.domains.pathology.datasets.slide_labels.read_slide_labels` and
  :class:`~domainclip.domains.pathology.datasets.slide_labels.PatchShardStream`: slide-level labels
  (``slides.csv``) and the patch shards written by the pathology prepare commands.
"""

from domainclip.domains.pathology.datasets.folder import PatchFolder
from domainclip.domains.pathology.datasets.pcam import PatchCamelyon
from domainclip.domains.pathology.datasets.slide_labels import PatchShardStream, read_slide_labels

__all__ = ["PatchCamelyon", "PatchFolder", "PatchShardStream", "read_slide_labels"]
