"""Versioned prompt files and their loader (a change adds v2 beside v1)."""
