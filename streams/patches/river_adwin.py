"""ADWIN updated by reading and writing River's compiled window directly (the monitor's hot path).

``ADWIN.update`` is three lines over a compiled window (``_helper``): start a fresh window when
the last update detected a drift (``_reset``), then update the window and keep its verdict
(``_drift_detected``). :func:`adwin_step` does the same without the Python calls around each
property (it runs for every label, two or three times); a River whose ADWIN renamed them is read
through the public API (:func:`_reads_adwin_privately`), and the canary here fails.
"""

from __future__ import annotations

from river import drift

from streams.patches.pins import Pin

UPSTREAM = "none filed: River 0.26's ADWIN has no update that returns the window it cut"
RELIES_ON = (
    Pin("river.drift:ADWIN", "_helper", assigned_in="_reset"),
    Pin("river.drift:ADWIN", "_drift_detected", assigned_in="update"),
    Pin("river.drift:ADWIN", "_reset", parameters=("self",)),
    Pin("river._river_rust.drift:AdaptiveWindowing", "get_width"),
    Pin("river._river_rust.drift:AdaptiveWindowing", "get_total"),
    Pin("river._river_rust.drift:AdaptiveWindowing", "update"),
)


def _reads_adwin_privately() -> bool:
    """Whether this River's ADWIN has the parts :func:`adwin_change` reads and writes itself.

    ``ADWIN.update`` is three lines over a compiled window (``_helper``): start a fresh window
    when the last update detected a drift (``_reset``), then update the window and keep its
    verdict (``_drift_detected``). A River that renamed them is read through the public API.
    """
    detector = drift.ADWIN()
    window = getattr(detector, "_helper", None)
    if window is None:
        return False
    return (
        isinstance(getattr(detector, "_drift_detected", None), bool)
        and callable(getattr(detector, "_reset", None))
        and all(callable(getattr(window, name, None)) for name in ("get_width", "get_total", "update"))
        and isinstance(window.get_width(), float)
        and isinstance(window.get_total(), float)
    )


_ADWIN_PRIVATE = _reads_adwin_privately()


def adwin_step(detector: drift.ADWIN, value: float) -> tuple[float, float] | None:
    """``detector.update(value)``; the window's width and total before it when it detected a drift.

    None when it did not (nearly always). On River's own ADWIN this reads and updates its
    compiled window directly, as ``ADWIN.update`` and its properties do: this runs for every
    label, two or three times, and each property is a Python call around a call into River's
    Rust (tests compare the detector's state with River's after every update).

    >>> detector = drift.ADWIN()
    >>> steps = [adwin_step(detector, 0.0 if i < 500 else 1.0) for i in range(600)]
    >>> first = next(i for i, step in enumerate(steps) if step is not None)
    >>> 500 < first < 600, steps[first] == (float(first), float(first - 500))
    (True, True)
    """
    if not _ADWIN_PRIVATE or type(detector) is not drift.ADWIN:
        width, total = float(detector.width), float(detector.total)
        detector.update(value)
        return (width, total) if detector.drift_detected else None
    window = detector._helper
    width, total = window.get_width(), window.get_total()
    if detector._drift_detected:
        detector._reset()  # a drift detected on the last update: ADWIN starts a fresh window
        window = detector._helper
    detected = detector._drift_detected = window.update(value)
    return (width, total) if detected else None
