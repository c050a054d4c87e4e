"""Local stand-ins of services the tests cannot reach (Toloka)."""
