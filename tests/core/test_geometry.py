"""Corrupted label files and images, as real exports and disks leave them (bytes cut, fields
dropped, numbers garbled, another encoding), through every reader: the reader either reads
what is there or raises fishbear's own error naming the file. Never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(0, 10**8), st.integers(0, 10**8), st.sampled_from(["crop", "pad", "squish"]),
       st.sampled_from([224, [192, 336], 32]))
def test_whether_a_picture_can_be_fitted_is_a_reason_or_none(height, width, resize, size):
    from fishbear.core.geometry import MAX_FIT_PIXELS, as_hw, fit_problem
    from fishbear.engine.deploy.standalone import fit_problem as standalone_fit

    problem = fit_problem(height, width, size, resize)
    assert problem == standalone_fit(height, width, {"input_size": list(as_hw(size)), "resize": resize})
    if problem is None and resize != "squish":
        model_h, model_w = as_hw(size)
        scale = (max if resize == "crop" else min)(model_h / height, model_w / width)
        assert round(height * scale) * round(width * scale) <= MAX_FIT_PIXELS
