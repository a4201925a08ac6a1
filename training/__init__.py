"""InkHue training: the PyTorch GAN, its data pipeline, training loop and ONNX export.

Imports the engine's color and region modules so that preprocessing is defined once.
Importing this package does not import torch; its submodules do.
"""
