"""dispatcher of Labelloop."""
