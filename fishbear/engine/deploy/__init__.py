"""Deployment: a checkpoint exported to ONNX with its parity report and standalone predictor, an
export folder behind the predictor interface, and serving over HTTP with its page."""
