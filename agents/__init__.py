"""agents of Labelloop."""
