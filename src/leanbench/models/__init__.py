"""Model adapters: one interface over a PyTorch module, later a Hugging Face model or an ONNX Runtime session."""
