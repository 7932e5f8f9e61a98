"""The epoch plan of sharded training (vtn/datasets/shard_plan.py): equal batches on every rank, each sample at most
once, lanes that are contiguous streams, a bounded shuffle buffer, the same order for the same (seed, epoch)."""

import numpy as np
import pytest

from vtn.datasets.shard_plan import EpochPlan, buffer_shuffle, epoch_order

CASES = [
    # shard sample counts, world, batch, lanes: counts that do not divide ranks x workers x batch
    ([5, 7, 3, 9], 2, 2, 2),
    ([10, 10, 10], 4, 3, 1),
    ([1, 2, 3, 4, 5, 6, 7], 3, 2, 4),
    ([50], 8, 2, 3),
    ([4, 4], 2, 1, 2),
]


def rank_samples(plan):
    return [plan.sample(j, t) for j in range(plan.batches) for t in range(plan.batch)]


@pytest.mark.parametrize("counts,world,batch,lanes", CASES)
def test_every_rank_gets_the_same_batches_and_no_sample_twice(counts, world, batch, lanes):
    total = sum(counts)
    plans = [EpochPlan(counts, 3, 1, r, world, batch, lanes, buffer=4) for r in range(world)]
    assert {p.batches for p in plans} == {(total // world) // batch}
    seen = [s for p in plans for s in rank_samples(p)]
    assert len(seen) == len(set(seen)) == plans[0].batches * batch * world
    assert total - len(seen) < world * batch  # what is left out is less than one global batch
    assert set(seen) <= set(range(total))


@pytest.mark.parametrize("counts,world,batch,lanes", CASES)
def test_a_lane_is_a_contiguous_part_of_its_rank_and_outputs_its_batches(counts, world, batch, lanes):
    plan = EpochPlan(counts, 0, 2, world - 1, world, batch, lanes, buffer=3)
    streams = [plan.lane_stream(lane) for lane in range(plan.lanes)]
    assert np.array_equal(np.concatenate(streams), plan.mine)
    for j in range(plan.batches):
        lane = j % plan.lanes
        assert all(plan.sample(j, t) in set(streams[lane].tolist()) for t in range(batch))


def test_the_order_depends_on_seed_and_epoch_only():
    a = EpochPlan([20, 30, 25], 7, 4, 1, 2, 4, 2, 8)
    b = EpochPlan([20, 30, 25], 7, 4, 1, 2, 4, 2, 8)
    assert rank_samples(a) == rank_samples(b)
    assert rank_samples(a) != rank_samples(EpochPlan([20, 30, 25], 7, 5, 1, 2, 4, 2, 8))
    assert rank_samples(a) != rank_samples(EpochPlan([20, 30, 25], 8, 4, 1, 2, 4, 2, 8))


def test_the_shard_order_changes_per_epoch_and_keeps_each_shard_whole():
    counts = [3, 3, 3, 3]
    orders = [epoch_order(counts, 0, e) for e in range(4)]
    assert len({tuple(o) for o in orders}) > 1
    for order in orders:
        assert sorted(order.tolist()) == list(range(12))
        assert all(order[i + 1] == order[i] + 1 for i in range(0, 12, 3) for i in (i, i + 1))


@pytest.mark.parametrize("length,buffer", [(0, 4), (1, 4), (10, 1), (10, 3), (100, 16), (5, 50)])
def test_buffer_shuffle_is_a_permutation_that_holds_at_most_the_buffer(length, buffer):
    out = buffer_shuffle(length, buffer, np.random.default_rng(0))
    assert sorted(out.tolist()) == list(range(length))
    # output k was read by the time the stream reached position k + buffer - 1
    assert all(out[k] <= k + buffer - 1 for k in range(length)) if buffer > 1 else out.tolist() == list(range(length))
    if length >= 10 and buffer > 2:
        assert out.tolist() != list(range(length))


def test_without_shuffle_the_order_is_the_index_order():
    plan = EpochPlan([4, 4], 0, 3, 0, 1, 2, 1, 8, shuffle=False)
    assert rank_samples(plan) == list(range(8))


def test_a_batch_outside_the_epoch_is_an_error():
    plan = EpochPlan([4, 4], 0, 0, 0, 1, 2, 1, 2)
    with pytest.raises(IndexError, match="outside the epoch"):
        plan.sample(plan.batches, 0)


def test_the_buffer_draws_change_with_the_epoch_and_the_lane():
    orders = [EpochPlan([40], 0, e, 0, 1, 2, 2, 8).lane_order(lane).tolist() for e in (0, 1) for lane in (0, 1)]
    assert len({tuple(o) for o in orders}) == 4
