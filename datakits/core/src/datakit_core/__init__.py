"""datakit-core: the shared runner framework."""
