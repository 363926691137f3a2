"""Compression methods beyond bit-width search: OCNNA filter pruning, PSO-initialised k-means
weight clustering, evolutionary fine-tuning of quantized weights, and EDA with cooperative
coevolution for gradient-free low-bit training."""
