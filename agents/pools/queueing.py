"""Erlang C for labeling pools: how many workers meet a time-to-label SLA, and the queue they keep.

Every answer is a job of an M/M/c queue: tasks arrive at ``λ`` per second
(``arrival_rate_per_min / 60``), each needs ``k`` answers (``overlap``), so
answer-jobs arrive at ``kλ``; each of the ``c`` workers gives ``μ`` answers
per second (``capacity_per_min / workers / 60``). The offered load is
``a = kλ/μ`` erlangs and, for ``a < c``, Erlang C gives the probability that
a job waits and the tail of its wait (Gross & Harris; Koole)::

    C(c, a) = B(c, a) · c / (c − a·(1 − B(c, a)))     (B: Erlang B, by its stable recursion)
    P(W > t) = C(c, a) · exp(−(cμ − kλ)·t)

A task's time-to-label is modelled as ``W + max(S_1, …, S_k)``: its ``k``
answers are taken as served in parallel by different workers after one
wait ``W``, each service ``S_i`` exponential with rate ``μ``. The
approximation: in a busy queue the ``k`` jobs of a task start at ``k``
consecutive departures (``(k−1)/(cμ)`` apart on average), not together, and
real service times are less variable than exponential (the simulated crowd's
are log-normal, CV ≈ 0.5), which makes M/M/c waits pessimistic by about
``(1 + CV²)/2`` (Allen–Cunneen) — on the whole the model errs on the safe
side. ``P(T > t)`` has a closed form (the binomial expansion of
``(1 − e^{−μs})^k`` convolved with the exponential wait), and the smallest
``c`` with ``P(T > SLA) ≤ 1 − quantile`` is the staffing that meets the SLA.

The autoscaler (:mod:`agents.pools.autoscaler`) sizes pools with these; they are pure functions
of the load, the service rate and the overlap.

References
----------
Gross, D., Shortle, J. F., Thompson, J. M. & Harris, C. M. (2008).
*Fundamentals of Queueing Theory*, 4th ed., Wiley (M/M/c: P(wait) and the
waiting-time distribution).

Koole, G. (2013). *Call Center Optimization*, MG books (Erlang C, the
service level ``1 − C·e^{−(cμ−λ)t}``, staffing by the smallest c).

Allen, A. O. (1990). *Probability, Statistics, and Queueing Theory*, 2nd ed.
(the Allen–Cunneen approximation for G/G/c).
"""

from __future__ import annotations

import math

#: No pool is sized past this many workers (a bound for the staffing search and the budget).
MAX_WORKERS = 100_000


def erlang_c(servers: int, load: float) -> float:
    """P(wait) for M/M/c with ``servers`` servers and ``load`` erlangs (1 when ``load >= servers``).

    >>> round(erlang_c(1, 0.7), 6)  # one server: P(wait) is the utilisation
    0.7
    >>> round(erlang_c(2, 1.0), 6)  # a²/(c!(1−ρ)) / (Σ aⁿ/n! + ...) = 1/3
    0.333333
    """
    if load <= 0.0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = load * blocking / (n + load * blocking)
    return servers * blocking / (servers - load * (1.0 - blocking))


def time_to_label_tail(
    t_s: float, servers: int, arrival_per_s: float, service_per_s: float, overlap: int
) -> float:
    """``P(T > t_s)`` for ``T = W + max(S_1..S_k)`` (the model of the module docstring).

    >>> round(time_to_label_tail(0.0, 3, 0.5, 1.0, 1), 6)
    1.0
    >>> round(time_to_label_tail(3.0, 10, 2.0, 1.0, 3), 4)  # a Monte Carlo of 200,000 tasks gives 0.1462
    0.1464
    >>> time_to_label_tail(3.0, 7, 2.0, 1.0, 3) > time_to_label_tail(3.0, 8, 2.0, 1.0, 3)
    True
    """
    mu, k = service_per_s, overlap
    load = k * arrival_per_s / mu
    if load >= servers:
        return 1.0
    if t_s <= 0.0:
        return 1.0
    waits = erlang_c(servers, load)
    theta = servers * mu - k * arrival_per_s
    served = 0.0  # P(max S ≤ t)
    after_wait = 0.0  # P(W' + max S ≤ t), W' ~ Exp(θ)
    for j in range(k + 1):
        weight = math.comb(k, j) * (-1) ** j
        served += weight * math.exp(-j * mu * t_s)
        rate = j * mu
        if j == 0:
            part = 1.0 - math.exp(-theta * t_s)
        elif abs(rate - theta) < 1e-12 * max(rate, theta):
            part = theta * t_s * math.exp(-theta * t_s)
        else:
            part = theta * (math.exp(-theta * t_s) - math.exp(-rate * t_s)) / (rate - theta)
        after_wait += weight * part
    done = (1.0 - waits) * served + waits * after_wait
    return min(1.0, max(0.0, 1.0 - done))


def time_to_label_quantile(
    quantile: float, servers: int, arrival_per_s: float, service_per_s: float, overlap: int
) -> float:
    """The ``quantile`` of the time-to-label in seconds (``inf`` when the queue is unstable).

    >>> round(time_to_label_quantile(0.5, 100, 0.001, math.log(2), 1), 3)  # no wait: the median of Exp(ln 2)
    1.0
    """
    if overlap * arrival_per_s >= servers * service_per_s:
        return math.inf
    low, high = 0.0, 1.0 / service_per_s
    while time_to_label_tail(high, servers, arrival_per_s, service_per_s, overlap) > 1.0 - quantile:
        high *= 2.0
    for _ in range(60):
        middle = (low + high) / 2.0
        if time_to_label_tail(middle, servers, arrival_per_s, service_per_s, overlap) > 1.0 - quantile:
            low = middle
        else:
            high = middle
    return high


def workers_for_sla(
    arrival_per_s: float,
    service_per_s: float,
    overlap: int,
    sla_s: float,
    quantile: float = 0.95,
    max_utilisation: float = 1.0,
    limit: int = MAX_WORKERS,
) -> int | None:
    """The smallest c whose ``quantile`` time-to-label is within ``sla_s`` (None: none up to ``limit``).

    >>> workers_for_sla(arrival_per_s=1.0, service_per_s=0.2, overlap=1, sla_s=30.0)  # 5 erlangs
    6
    >>> workers_for_sla(arrival_per_s=1.0, service_per_s=0.2, overlap=1, sla_s=1.0) is None  # too slow
    True
    """
    if arrival_per_s <= 0.0:
        return 0
    load = overlap * arrival_per_s / service_per_s
    start = max(math.floor(load) + 1, math.ceil(load / max_utilisation - 1e-9), 1)
    for servers in range(start, limit + 1):
        if time_to_label_tail(sla_s, servers, arrival_per_s, service_per_s, overlap) <= 1.0 - quantile:
            return servers
        if erlang_c(servers, load) < 1e-9:  # no wait left: more workers cannot shorten the service
            return None
    return None


def expected_queue(servers: int, load: float) -> float:
    """``L_q``: the mean number of jobs waiting in M/M/c (``inf`` when unstable)."""
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) * load / (servers - load)
