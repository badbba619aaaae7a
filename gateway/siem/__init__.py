"""SIEM: log ingest and search, sources, statistics, hunts."""
