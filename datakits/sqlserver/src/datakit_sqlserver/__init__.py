"""SQL Server source datakit."""
