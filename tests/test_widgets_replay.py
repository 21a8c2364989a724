"""utils.widgets.replay, headless: move the slider from Python and read back the frame shown."""

from __future__ import annotations

import numpy as np
import pytest

from utils.widgets import TrainingReplay


def _frames(t: int = 4, colour: bool = False) -> np.ndarray:
    grey = np.stack([np.full((6, 5), i / (t - 1)) for i in range(t)])
    return np.repeat(grey[..., None], 3, axis=-1) if colour else grey


def test_starts_at_the_last_snapshot():
    replay = TrainingReplay(_frames(), labels=["a", "b", "c", "d"])
    assert replay.slider.value == 3 and replay.caption == "d", "the trained model should be shown first"
    assert np.allclose(replay.last_image, _frames()[3])


@pytest.mark.parametrize("colour", [False, True])
def test_moving_the_slider_shows_that_frame_and_its_label(colour):
    replay = TrainingReplay(_frames(colour=colour), labels=["s0", "s1", "s2", "s3"])
    replay.slider.value = 1
    assert np.allclose(replay.last_image, _frames(colour=colour)[1]) and replay.caption == "s1"
    assert bytes(replay.image.value).startswith(b"\x89PNG"), "the image widget should hold a PNG"
    assert np.allclose(replay.show(2), _frames(colour=colour)[2])


def test_bad_frames_and_labels_are_refused():
    with pytest.raises(ValueError, match="one label per frame"):
        TrainingReplay(_frames(), labels=["only one"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        TrainingReplay(_frames() * 3)
    with pytest.raises(ValueError, match="T >= 1"):
        TrainingReplay(np.zeros((0, 4, 4)))
