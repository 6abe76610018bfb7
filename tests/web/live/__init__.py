"""A simulated run in progress for the web app's browser tests (its own process)."""
