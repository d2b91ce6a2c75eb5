"""dbt runner datakit: dbt-core behind the datakit runner contract."""
