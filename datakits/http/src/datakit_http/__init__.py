"""HTTP API source datakit."""
