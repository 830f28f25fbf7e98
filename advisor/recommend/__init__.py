"""Recommendations for a task (the API function is advisor.api.recommend)."""
