import numpy as np
import pytest
import torch

from tests.helpers import synthetic_opts
from vtn.config import ConfigError, load_config
from vtn.datasets import EpochSampler, build_loader, shuffle_dataset


def test_epoch_order_depends_only_on_seed_and_epoch():
    a, b = EpochSampler(40, 4, True, True, seed=3), EpochSampler(40, 4, True, True, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b) and all(e == 2 and d == 0 for _, e, d in a)
    b.set_epoch(3)
    assert [i for i, _, _ in a] != [i for i, _, _ in b]
    assert sorted(i for i, _, _ in a) == list(range(40))


def test_two_processes_see_the_global_batches_of_one():
    one = EpochSampler(37, 8, True, True, seed=0)
    two = [EpochSampler(37, 4, True, True, seed=0, rank=r, world=2) for r in range(2)]
    for s in [one] + two:
        s.set_epoch(5)
    single = [i for i, _, _ in one]
    shards = [[i for i, _, _ in s] for s in two]
    assert len(single) == 32 and len(one) == 32 and all(len(s) == 16 for s in two)
    for step in range(4):
        union = sorted(shards[0][step * 4 : step * 4 + 4] + shards[1][step * 4 : step * 4 + 4])
        assert union == sorted(single[step * 8 : step * 8 + 8])


def test_resuming_skips_finished_batches():
    s = EpochSampler(40, 4, True, True, seed=1)
    s.set_epoch(7)
    full = list(s)
    s.set_epoch(7, start_batch=3)
    assert list(s) == full[12:]


def test_evaluation_shards_cover_everything_once():
    shards = [list(EpochSampler(10, 4, False, False, seed=0, rank=r, world=3)) for r in range(3)]
    seen = sorted(i for s in shards for i, _, _ in s)
    assert seen == list(range(10))


def test_repeated_augmentation_gives_each_process_a_disjoint_equal_share_and_every_index_three_times():
    shards = [
        EpochSampler(40, 4, True, True, seed=2, rank=r, world=3, repeats=3, keep_epoch_size=False) for r in range(3)
    ]
    for s in shards:
        s.set_epoch(4)
    keys = [list(s) for s in shards]
    assert [len(k) for k in keys] == [len(s) for s in shards] == [40, 40, 40]  # 120 draws: 3 per index
    all_keys = [k for share in keys for k in share]
    assert len(set(all_keys)) == 120  # disjoint: no (index, draw) twice
    assert sorted(i for i, _, _ in all_keys) == sorted(list(range(40)) * 3)
    assert all(sorted(d for i2, _, d in all_keys if i2 == i) == [0, 1, 2] for i in range(40))
    # the copies of an index go to different processes (each process sees every index once here)
    assert all(sorted(i for i, _, _ in share) == list(range(40)) for share in keys)
    # DeiT's epoch length: as many draws as videos, the drawn ones three times each
    deit = [EpochSampler(40, 4, True, True, seed=2, rank=r, world=2, repeats=3) for r in range(2)]
    for s in deit:
        s.set_epoch(4)
    drawn = [k for s in deit for k in s]
    assert [len(s) for s in deit] == [20, 20] and len(set(drawn)) == 40
    counts = np.bincount([i for i, _, _ in drawn], minlength=40)
    assert set(counts.tolist()) <= {0, 1, 2, 3} and (counts == 3).sum() >= 12 and (counts > 0).sum() <= 14


def test_copies_of_a_video_get_different_augmentations(synthetic_dir):
    cfg = load_config(
        None, synthetic_opts(synthetic_dir) + ["DATA.TRAIN_JITTER_SCALES", [32, 48], "DATA.TRAIN_CROP_SIZE", 32]
    )
    dataset = build_loader(cfg, "train").dataset
    first, second = dataset[(3, 1, 0)]["frames"], dataset[(3, 1, 1)]["frames"]
    assert not torch.equal(first, second)
    assert torch.equal(first, dataset[(3, 1)]["frames"])  # draw 0 is the item of a run without repeats


def test_repeated_augmentation_from_the_config_lengthens_the_epoch_only_when_asked(synthetic_dir):
    base = synthetic_opts(synthetic_dir) + ["DATA.TRAIN_JITTER_SCALES", [32, 40], "DATA.TRAIN_CROP_SIZE", 32]
    plain = build_loader(load_config(None, base), "train")
    deit = build_loader(load_config(None, base + ["DATA_LOADER.REPEATED_AUG", 3]), "train")
    full = build_loader(
        load_config(None, base + ["DATA_LOADER.REPEATED_AUG", 3, "DATA_LOADER.REPEATED_AUG_EPOCH", "repeated"]), "train"
    )
    assert len(plain) == len(deit) == 3 and len(full) == 9
    assert len(build_loader(load_config(None, base + ["DATA_LOADER.REPEATED_AUG", 3]), "val")) == len(
        build_loader(load_config(None, base), "val")
    )  # evaluation never repeats


def test_loader_batches_and_per_process_batch_size(synthetic_dir):
    cfg = load_config(
        None, synthetic_opts(synthetic_dir) + ["DATA.TRAIN_JITTER_SCALES", [32, 40], "DATA.TRAIN_CROP_SIZE", 32]
    )
    loader = build_loader(cfg, "train")
    shuffle_dataset(loader, 0)
    batches = list(loader)
    assert len(batches) == len(loader) == 3  # 12 clips, batch 4, drop_last
    b = batches[0]
    assert b["frames"].shape == (4, 3, 4, 32, 32) and b["label"].shape == (4,)
    shuffle_dataset(loader, 0, start_iter=2)
    again = list(loader)
    assert len(again) == 1 and torch.equal(again[0]["frames"], batches[2]["frames"])
    test_loader = build_loader(cfg, "test")
    assert sum(len(b["video_idx"]) for b in test_loader) == 6 * 6  # every view once


def test_loader_with_workers_gives_the_same_items(synthetic_dir):
    base = synthetic_opts(synthetic_dir) + ["DATA.TRAIN_JITTER_SCALES", [32, 40], "DATA.TRAIN_CROP_SIZE", 32]
    outs = []
    for workers in (0, 2):
        loader = build_loader(load_config(None, base + ["DATA_LOADER.NUM_WORKERS", workers]), "train")
        shuffle_dataset(loader, 1)
        outs.append([b["frames"] for b in loader])
    assert len(outs[0]) == len(outs[1]) == 3  # never a pass on two empty loaders
    assert all(torch.equal(a, b) for a, b in zip(*outs))


def test_batch_size_must_split_over_processes(synthetic_dir, monkeypatch):
    import vtn.datasets.build as build

    monkeypatch.setattr(build, "_world", lambda: (0, 3))
    cfg = load_config(None, synthetic_opts(synthetic_dir))
    with pytest.raises(ConfigError, match=r"TRAIN.BATCH_SIZE = 4 is not allowed: .* number of processes .* = 3\)"):
        build.build_loader(cfg, "train")
    with pytest.raises(ConfigError, match=r"TEST.BATCH_SIZE = 4 is not allowed: .* number of processes \(3\)"):
        build.build_loader(cfg, "test")


def test_a_batch_of_one_item_is_the_item_itself_and_more_are_stacked():
    from vtn.datasets.build import collate_items

    item = {"frames": torch.rand(3, 4, 8, 8), "label": torch.tensor(2)}
    batch = collate_items([item])
    assert batch["frames"].shape == (1, 3, 4, 8, 8) and batch["label"].tolist() == [2]
    assert batch["frames"].data_ptr() == item["frames"].data_ptr()  # no copy of a whole video's frames
    two = collate_items([item, {"frames": torch.zeros(3, 4, 8, 8), "label": torch.tensor(5)}])
    assert two["frames"].shape == (2, 3, 4, 8, 8) and two["label"].tolist() == [2, 5]
    assert torch.equal(two["frames"][0], item["frames"])


def _shared_in_worker(items):
    return torch.tensor([bool(item["frames"].is_shared()) for item in items])


@pytest.mark.parametrize("alone", [True, False])
def test_a_worker_makes_an_item_alone_in_its_batch_in_shared_memory(synthetic_dir, alone):
    """A batch of one item (a full video per process) reaches the main process without a copy: the worker makes its
    frames in shared memory. Items batched with others are not (the stack into the batch copies them anyway)."""
    dataset = build_loader(
        load_config(None, [*synthetic_opts(synthetic_dir), "TEST.BATCH_SIZE", 1 if alone else 2, "NUM_GPUS", 0]),
        "test",
        "full_video",
    ).dataset
    assert dataset.items_alone is alone
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=1, collate_fn=_shared_in_worker)
    assert next(iter(loader)).tolist() == [alone]
    assert not dataset[0]["frames"].is_shared()  # in the main process: never
