"""AuroraSOC kernel: settings, errors, database, event bus, security primitives, metrics.

``core`` imports no other AuroraSOC package.
"""
