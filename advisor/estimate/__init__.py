"""Estimates of memory and latency (the API function is advisor.api.estimate)."""
