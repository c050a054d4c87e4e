"""The record explorer: an index of every event kept by the stream, searched by text, filter and similarity.

``rows`` folds topic records into one row per event (pure, idempotent), ``store`` keeps the rows
in SQLite or PostgreSQL, ``vectors`` answers "more like this", ``filters`` parses what to list,
``query`` is the :class:`Explorer` facade answering ``results``, ``indexer`` feeds the index from
the topics (and rebuilds it), ``api`` serves the GET JSON routes on the worker's web server.
"""

from agents.explorer.filters import ExplorerFilter
from agents.explorer.query import Explorer
from agents.explorer.results import Hit, Page, RecordDetail, RecordRow
from agents.explorer.settings import ExplorerSettings

__all__ = ["Explorer", "ExplorerFilter", "ExplorerSettings", "Hit", "Page", "RecordDetail", "RecordRow"]
