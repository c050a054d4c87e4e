"""pools of Labelloop."""
