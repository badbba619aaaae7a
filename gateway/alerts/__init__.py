"""Alerts: create with deduplication, triage workflow, acknowledgement, the live stream."""
