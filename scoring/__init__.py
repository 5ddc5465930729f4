"""Engine-agnostic batch inference: Arrow record batches in, float32 scores out (onnxruntime)."""

from __future__ import annotations

__all__: list[str] = []
