"""InkHue engine: ONNX Runtime colorization of line art and grayscale frames.

The engine never imports torch; models come from ``inkhue_training`` as ONNX files
that follow the contract in docs/DESIGN.md.
"""

__version__ = "0.1.0"
