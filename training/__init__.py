"""Training: Ludwig models per team, model and symbol (``training.train``), served as ONNX.

Import-light: only the names serving needs; Ludwig, torch and MLflow load inside the functions that use them.
"""

from training.names import registry_name

__all__ = ["registry_name"]
