"""learner of Labelloop."""
