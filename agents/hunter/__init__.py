"""hunter: searches the logs for related activity the alerts missed, and scopes it."""
