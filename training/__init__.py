"""Training: Ludwig models per team, model and symbol (``training.train``), served as ONNX.

Import-light: Ludwig, torch and MLflow load inside the functions that use them.
"""
