"""Patches of other libraries, one module per patch, each pinned to the private parts it relies on.

Every module here overrides or reads something a library does not promise to keep (a private
attribute, a method's body we replace, a class attribute), names the upstream issue the patch
waits on (``UPSTREAM``), and lists what it relies on (``RELIES_ON``, :class:`~streams.patches.pins.Pin`).
``tests/streams/patches/test_canaries.py`` checks every pin against the installed libraries, so a
version bump that renames or re-signs one of them fails there, in one place, before it fails in
a worker.

==============================  ==========================================================
module                          patch
==============================  ==========================================================
``faust_topic``                 bytes straight to a started producer (no stampede guard)
``faust_raw_schema``            the message's own bytes to the streams (no decode path)
``faust_producer``              acks=all + idempotence outside transactions; flush waits
``faust_read_offsets``          the fetch loop's read offset not moved while flow is off
``faust_flow_control``          a resume that is not after a suspend keeps the queues
``faust_commit_floor``          no commit past a record dropped at a rebalance (#606)
``faust_wait_first``            the fetch loop's ``wait_first`` without four tasks a record
``faust_shutdown``              a stopping worker waits for acknowledgements so long only
``faust_read_committed``        read_committed in every processing guarantee
``faust_rocksdb_store``         each RocksDB closed at stop, no ``gc.collect()`` per table
``aiokafka_metadata``           fresh cluster metadata from a consumer's client
``river_linear``                the linear pipeline's privates :mod:`agents.learner.linear` reads
``river_adwin``                 ADWIN's compiled window, read and updated directly
``faust_state_dump``            not a patch: the SIGUSR1 dump of faust's and aiokafka's state
==============================  ==========================================================

Importing this package imports none of them (nor faust, aiokafka or River).
"""
