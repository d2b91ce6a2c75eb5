"""Spark datakit: parallel JDBC extract into Bronze, PySpark jobs, Kubernetes conf."""
