"""The ``labelloop-rocksdb`` faust store (the ``faust.stores`` entry point names this module).

The patch itself, and what it relies on, is :mod:`streams.patches.faust_rocksdb_store`;
:func:`streams.app.table_store` names the store.
"""

from __future__ import annotations

from streams.patches.faust_rocksdb_store import RocksStore

__all__ = ["RocksStore"]
