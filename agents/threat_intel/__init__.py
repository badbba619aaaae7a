"""threat_intel: indicators against threat feeds and reputation services."""
