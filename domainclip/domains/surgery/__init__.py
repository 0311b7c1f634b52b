"""Surgery domain: surgical video-language pretraining (SurgLaVi / SurgCLIP).

Importing this package is light. Video decoding, frame sampling and clip encoding live in
:mod:`domainclip.domains.surgery.video`, transcript reading and merging in
:mod:`domainclip.domains.surgery.transcripts`, and the training-time clip decoder for the
streaming reader in :mod:`domainclip.domains.surgery.decoder`.
"""
