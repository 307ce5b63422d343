"""Training targets computed from instance images."""
