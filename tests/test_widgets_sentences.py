"""utils.widgets.sentences, headless: move the controls from Python and read back what is shown."""

from __future__ import annotations

import pytest
import torch

from utils.widgets import NearestSentences, SentenceHomotopy

SENTENCES = ["she smiled .", "he frowned .", "they walked to the house .", "it rained all day ."]


def _encode(sentences: list[str]) -> torch.Tensor:
    """A toy code: [number of words, length in characters] of each sentence."""
    return torch.tensor([[len(s.split()), len(s)] for s in sentences], dtype=torch.float)


def _decode(z: torch.Tensor, greedy: bool, seed: int) -> list[str]:
    """The code written out, so that the test can read which z was decoded and how."""
    return [f"{'g' if greedy else 's'}{seed}:{a:.1f},{b:.1f}" for a, b in z.tolist()]


def test_homotopy_decodes_the_point_at_t_greedily_and_by_sampling():
    widget = SentenceHomotopy(_encode, _decode, SENTENCES, a=0, b=2, n_steps=3)
    widget.slider.value = 0.0
    assert widget.last_greedy == "g0:3.0,12.0", "t = 0 must decode the first sentence's code"
    widget.slider.value = 1.0
    assert widget.last_greedy == "g0:6.0,26.0"
    widget.seed.value = 7
    assert widget.last_sampled == "s7:6.0,26.0", "the sample must use the chosen seed"
    assert widget.last_path == ["g0:3.0,12.0", "g0:4.5,19.0", "g0:6.0,26.0"], "greedy decodes at 0, 1/2, 1"
    assert "g0:4.5,19.0" in widget.output.value


def test_homotopy_follows_the_chosen_sentences():
    widget = SentenceHomotopy(_encode, _decode, SENTENCES, a=0, b=1)
    widget.second.value = 3
    widget.slider.value = 1.0
    assert widget.last_greedy == "g0:5.0,19.0"


def test_homotopy_refuses_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 sentences"):
        SentenceHomotopy(_encode, _decode, SENTENCES[:1])
    with pytest.raises(ValueError, match="path"):
        SentenceHomotopy(_encode, _decode, SENTENCES, path="curvy")
    with pytest.raises(ValueError, match="codes"):
        SentenceHomotopy(lambda s: torch.zeros(1, 2), _decode, SENTENCES)


def test_nearest_sentences_ranks_by_cosine_similarity():
    bank = ["a b", "a b c d e f g h", "x"]
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    widget = NearestSentences(lambda s: torch.tensor([[1.0, 0.1]] * len(s)), bank, bank_codes=codes, k=2)
    assert [s for s, _ in widget.last_neighbours] == ["a b", "x"]
    assert widget.last_neighbours[0][1] == pytest.approx(1.0 / (1.01**0.5))
    widget2 = NearestSentences(_encode, SENTENCES, k=1)
    widget2.text.value = "they walked to the house ."
    assert widget2.last_neighbours[0][0] == "they walked to the house .", (
        "a bank sentence is its own neighbour"
    )
    assert "walked" in widget2.output.value


def test_nearest_sentences_refuses_too_many_neighbours():
    with pytest.raises(ValueError, match="neighbours"):
        NearestSentences(_encode, SENTENCES, k=5)
