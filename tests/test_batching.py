"""utils.data.batches: device-resident minibatches by slicing a permutation."""

import pytest
import torch

from utils.data import batches, num_batches


def test_one_epoch_visits_every_row_once():
    x = torch.arange(10)
    seen = torch.cat([b for (b,) in batches(x, batch_size=3, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10)), "each row should appear exactly once per epoch"


def test_aligned_tensors_stay_aligned():
    x = torch.arange(20)
    y = x * 10
    for bx, by in batches(x, y, batch_size=6):
        assert torch.equal(by, bx * 10), "x and y slices must use the same indices"


def test_drop_last_and_count():
    assert num_batches(10, 3) == 4 and num_batches(10, 3, drop_last=True) == 3
    sizes = [len(b[0]) for b in batches(torch.arange(10), batch_size=3, drop_last=True)]
    assert sizes == [3, 3, 3]


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="first dimension"):
        next(batches(torch.zeros(4), torch.zeros(5), batch_size=2))
