"""Hummingbird Studio: AMD's Hummingbird text-to-video and image-to-video models, run faithfully."""

__version__ = "0.1.0"
