"""PostgreSQL source datakit."""
