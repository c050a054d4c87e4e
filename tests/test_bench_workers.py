"""The worker benches (F5, F6, F7) decide their goals from what they measured, never loosened."""

from __future__ import annotations

import math
import os
import socket

from bench import loop_latency, memory, scale_out
from bench.workers import cpu_s, listener_pid, rss_bytes

MIB = 1024**2


def _latencies(accepted_s: list[float], reviewed_s: list[float], missing: int = 0) -> loop_latency.Latencies:
    return loop_latency.Latencies(
        {"accepted": accepted_s, "reviewed": reviewed_s}, missing=missing, sent=1_000, send_s=1.0
    )


def test_f5_holds_only_within_both_bounds_and_with_every_label() -> None:
    round_trip = loop_latency.Latencies({"round trip": [0.010] * 100}, sent=100, send_s=0.1)
    quick = _latencies([0.03] * 95 + [0.049] * 5, [0.5] * 100)
    (goal,) = loop_latency.rows_and_goal(quick, round_trip, quick)[1]
    assert goal.holds
    assert goal.line().endswith("holds")
    slow_accepted = _latencies([0.03] * 90 + [0.051] * 10, [0.5] * 100)
    assert not loop_latency.rows_and_goal(slow_accepted, round_trip, quick)[1][0].holds
    slow_reviewed = _latencies([0.03] * 100, [0.5] * 90 + [1.2] * 10)
    assert not loop_latency.rows_and_goal(slow_reviewed, round_trip, quick)[1][0].holds
    unlabeled = _latencies([0.03] * 100, [0.5] * 100, missing=1)
    (lost,) = loop_latency.rows_and_goal(unlabeled, round_trip, quick)[1]
    assert not lost.holds
    assert "1 unlabeled" in lost.figure


def test_f5_counts_a_missing_label_as_infinitely_late() -> None:
    latencies = _latencies([0.1] * 9, [], missing=1)
    assert latencies.percentile(None, 0.95) == math.inf
    assert latencies.percentile("accepted", 0.95) == 0.1
    assert latencies.percentile("reviewed", 0.5) == math.inf  # none measured is not "fast"


def test_f6_compares_the_rss_at_n_with_the_rss_at_half_n() -> None:
    flat = memory.Growth(1_000, [(10, 300 * MIB), (500, 320 * MIB), (1_000, 340 * MIB)], took_s=10.0)
    rows, (goal,) = memory.rows_and_goal(flat)
    assert goal.holds
    assert "+6.2%" in goal.figure
    assert rows[1].ratio == 340 / 320
    growing = memory.Growth(1_000, [(10, 300 * MIB), (500, 320 * MIB), (1_000, 360 * MIB)], took_s=10.0)
    assert not memory.rows_and_goal(growing)[1][0].holds


def test_f6_fails_when_the_worker_did_not_route_every_event() -> None:
    stalled = memory.Growth(1_000, [(10, 300 * MIB), (500, 320 * MIB), (900, 321 * MIB)], took_s=10.0)
    (goal,) = memory.rows_and_goal(stalled)[1]
    assert not goal.holds
    assert "900 routed" in goal.figure


def test_f7_needs_the_ratio_and_a_clean_window_and_prints_the_cpu_split() -> None:
    one = scale_out.Split(1_000.0, 45.0, (40.0,), 20.0, 5.0, rebalanced=False, ran_dry=False)
    two = scale_out.Split(1_600.0, 45.0, (35.0, 34.0), 25.0, 5.0, rebalanced=False, ran_dry=False)
    (goal,) = scale_out.rows_and_goal(one, two)[1]
    assert goal.holds
    assert "1.60x" in goal.figure
    assert "workers 35.0 + 34.0 s, broker 25.0 s" in goal.figure
    capped = scale_out.Split(1_200.0, 45.0, (30.0, 30.0), 28.0, 2.0, rebalanced=False, ran_dry=False)
    assert not scale_out.rows_and_goal(one, capped)[1][0].holds
    moved = scale_out.Split(1_600.0, 45.0, (35.0, 34.0), 25.0, 5.0, rebalanced=True, ran_dry=False)
    (unclean,) = scale_out.rows_and_goal(one, moved)[1]
    assert not unclean.holds
    assert "rebalanced in the window" in unclean.figure


def test_proc_readings_of_this_process() -> None:
    assert cpu_s(os.getpid()) > 0
    assert rss_bytes(os.getpid()) > 0
    assert cpu_s(2**22 + 1) == 0.0
    assert rss_bytes(2**22 + 1) == 0


def test_listener_pid_finds_the_process_listening_on_a_port() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert listener_pid(listening.getsockname()[1]) == os.getpid()


def test_f5_holds_only_under_50_ms_accepted_whatever_the_round_trip() -> None:
    round_trip = loop_latency.Latencies({"round trip": [0.020] * 100}, sent=100, send_s=0.1)
    within_5x = _latencies([0.03] * 90 + [0.08] * 10, [0.5] * 100)  # 80 ms <= 5 x 20 ms, > 50 ms
    assert not loop_latency.rows_and_goal(within_5x, round_trip, within_5x)[1][0].holds


def test_f8_divides_the_workers_cpu_by_the_labelled_events_and_prints_each_stages_share() -> None:
    from collections import Counter

    cheap = loop_latency.Cpu(seconds=4.2, events=30_000)
    rows, (goal,) = loop_latency.cpu_goal(cheap, Counter({"router": 60, "faust/Kafka client": 40}))
    assert goal.holds
    assert round(rows[0].figure, 6) == 140.0
    assert "router 60%" in goal.figure
    assert "faust/Kafka client 40%" in goal.figure
    dear = loop_latency.Cpu(seconds=4.8, events=30_000)
    assert not loop_latency.cpu_goal(dear, Counter())[1][0].holds
    assert not loop_latency.cpu_goal(loop_latency.Cpu(seconds=1.0, events=0), Counter())[1][0].holds
