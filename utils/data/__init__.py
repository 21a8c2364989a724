"""Datasets of the course: real images with checksums, 2-D toy densities, a text corpus, and
minibatches sliced from tensors that already live on the device."""

from utils.data.batching import batches, num_batches

__all__ = ["batches", "num_batches"]
