"""The application: the ``labelloop`` command, above the stages (``agents``) and the plumbing (``streams``).

Nothing below imports it (``make lint`` checks the layers with import-linter):
``labelloop`` → ``agents`` → ``streams`` → ``schemas``.
"""
