"""Training's Ludwig adapter: the only code that imports Ludwig or torch.

``fit`` trains a ``LudwigModel`` and reports each epoch; ``export`` turns it into the served ONNX graph.
Both load Ludwig (≈20 s, ≈1.4 GB) inside their functions, so importing them costs nothing.
"""
