"""The log store: one ClickHouse table (embedded chDB or a server) behind one interface."""
