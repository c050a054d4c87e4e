"""streams of Labelloop."""
