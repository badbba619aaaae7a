"""network: flows, DNS and IDS telemetry: beaconing, scans, exfiltration, Suricata alerts."""
