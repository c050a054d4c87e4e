"""``labelloop demo``: the whole loop live on a real broker, with a surge, a drift and bad input.

Starts (or reuses) the local broker, creates a fresh set of topics, runs a real faust worker as
a separate process with the simulated crowd, replays a drifting stream through the frozen
production model, mixes in malformed records, shows the loop live (in the terminal and on the
worker's dashboard) and ends with a summary (also written as JSON) and a self-contained HTML
report of the whole run.

=============  ==============================================================
module         what it holds
=============  ==============================================================
``settings``   :class:`DemoSettings`: what the demo replays, how the loop is set
``run``        :func:`run_demo`: broker, topics, worker, the replay, the ending
``worker``     the worker process: its environment, start and stop
``view``       :class:`LoopView` and the thread that reads the output topics
``summary``    :func:`summarize`: the run's figures, against the truth
``render``     the live table and the summary's tables, for a person
=============  ==============================================================
"""

from agents.simulation.demo.run import run_demo
from agents.simulation.demo.settings import DemoSettings

__all__ = ["DemoSettings", "run_demo"]
