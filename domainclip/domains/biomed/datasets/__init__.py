"""Biomedical benchmark adapters over standard on-disk layouts: folder per class, CSV of path and label.

Both read PNG/JPEG/TIFF with PIL and DICOM/NIfTI through MONAI
(:class:`~domainclip.domains.biomed.datasets.medical_image.MedicalImageLoader`); the tasks of
:mod:`~domainclip.domains.biomed.registry` name which adapter and options each benchmark uses.
"""
