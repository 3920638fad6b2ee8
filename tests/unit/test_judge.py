"""The verdict on a unit after a settings change (model.settings_changes.judge)."""

from __future__ import annotations

from ezmsg_lab.model.settings_changes import ERROR_GRACE_S, PollSample, judge

T0 = 1000.0


def polls(*totals: tuple[float, int]) -> list[PollSample]:
    return [PollSample(T0 + dt, out, None) for dt, out in totals]


def verdict(samples, *, errors=0, early=0, elapsed=0.5, window=3.0):
    return judge(
        samples,
        confirmed_s=T0,
        errors=errors,
        last_error="ValueError: Nyquist" if errors or early else None,
        rate_before_hz=100.0,
        elapsed_s=elapsed,
        window_s=window,
        has_inputs=True,
        early_errors=early,
    )


def test_errors_after_the_grace_are_the_changes_doing_at_once():
    v = verdict(polls((0.05, 10), (0.1, 20)), errors=3)
    assert v is not None and v.status == "raising" and "Nyquist" in v.detail


def test_errors_right_after_an_undo_are_forgiven_when_the_unit_works_after_the_grace():
    """Undoing a breaking change: the unit raised on messages it processed before the
    undo reached it, then publishes again."""
    g = ERROR_GRACE_S
    # progress seen only before the grace ends: not enough to forgive yet
    assert verdict(polls((0.05, 10), (0.1, 20)), early=2) is None
    v = verdict(polls((0.05, 10), (g + 0.01, 20), (g + 0.06, 25)), early=2)
    assert v is not None and v.status == "ok"


def test_early_errors_without_any_sign_of_work_are_raising_by_the_end_of_the_window():
    v = verdict(polls((0.05, 10), (0.1, 10)), early=2, elapsed=3.0, window=3.0)
    assert v is not None and v.status == "raising"


def test_no_errors_and_progress_is_ok_quickly():
    v = verdict(polls((0.01, 10), (0.06, 12)))
    assert v is not None and v.status == "ok"
