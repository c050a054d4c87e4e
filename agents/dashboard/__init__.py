"""See the loop: the worker's ``/metrics``, its live dashboard and the demo's offline report."""
