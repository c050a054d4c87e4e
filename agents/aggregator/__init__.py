"""aggregator of Labelloop."""
