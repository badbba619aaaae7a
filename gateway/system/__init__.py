"""System: runtime settings and metrics."""
