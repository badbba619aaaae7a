"""Detection engineering: Sigma rules, their runs, suppressions, feedback and metrics."""
