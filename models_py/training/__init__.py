"""Training: model specs, candidate search, calibration, evaluation and ONNX export."""
