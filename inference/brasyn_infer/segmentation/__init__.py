"""Tumor segmentation of a completed case: labels, the segmenter's preprocessing and its ONNX inference."""
