"""brasyn-infer: BraSyn missing-modality synthesis through ONNX Runtime."""

__version__ = "0.1.0"
