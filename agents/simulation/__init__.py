"""The embedded default: a drifting stream, a frozen production model and the demo that runs them."""
