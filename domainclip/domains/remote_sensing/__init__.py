"""The remote sensing domain (RS-M-CLIP): GeoTIFF scenes, multilingual captions, self-distillation."""
