"""The pre-deployment gate (the API function is advisor.api.check)."""
