"""Where the ``labelloop`` command lived before it moved above the stages, to :mod:`labelloop.cli`.

Kept so that a console script installed before the move (``streams.cli:main``) and
``python -m streams.cli ...`` keep working; the one import from ``streams`` up to ``labelloop``,
allowed by name in the import-linter contract until every caller says ``python -m labelloop``.
"""

from labelloop.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
