"""monitor of Labelloop."""
