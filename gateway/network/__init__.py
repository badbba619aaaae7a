"""Network security: telemetry, attack detection, findings, configuration and coverage."""
