"""LocalStack plugins of the mlops test harness."""
