"""A project app with no migrations of its own: tests give it a temporary package."""
