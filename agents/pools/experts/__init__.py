"""The expert tier: in-house experts answer label requests on a web page the worker serves."""

from agents.pools.experts.backend import ExpertPool, Staffing
from agents.pools.experts.expert_queue import AnswerRefusedError, ExpertQueue, Lease, RecordedAnswer
from agents.pools.experts.server import ExpertServer, ShownTask, TaskCounters
from agents.pools.experts.settings import ExpertPoolSettings

__all__ = [
    "AnswerRefusedError",
    "ExpertPool",
    "ExpertPoolSettings",
    "ExpertQueue",
    "ExpertServer",
    "Lease",
    "RecordedAnswer",
    "ShownTask",
    "Staffing",
    "TaskCounters",
]
