"""Build steps: train, distill, prune, quantize, low-rank. One config class + one registered handler each."""
