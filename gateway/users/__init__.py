"""Users: profile and admin management."""
