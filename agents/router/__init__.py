"""router of Labelloop."""
