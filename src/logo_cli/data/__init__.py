"""Offline datasets (h5), synthetic buffers (zarr) and the real/synthetic sampler."""
