"""The specialist runtime: the base every agent builds on, and its process entry point."""
