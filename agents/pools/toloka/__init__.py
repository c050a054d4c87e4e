"""The Toloka pool: a crowd on Toloka driven through toloka-kit."""
