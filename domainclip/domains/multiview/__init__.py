"""The multi-view domain (Omniview-Tuning): rendered and captured views of objects, viewpoint-robust CLIP."""
