"""The shards dataset on local disk (vtn/datasets/shards.py): the frames of local files bit for bit, equal batches on
every rank with real loader workers, exact mid-epoch resume, one sample per request of a lane's run, and clear
errors. Object storage runs the same code through vtn.storage (tests/datasets/test_shards_s3.py)."""

import os
import shutil

import numpy as np
import pytest
import torch

from tests.helpers import synthetic_opts, tiny_cfg
from vtn.datasets import build_dataset, build_loader, shuffle_dataset
from vtn.datasets.shard_index import ShardIndex
from vtn.datasets.shards import ShardBatchSampler
from vtn.utils.errors import DatasetError


def write_all_splits(cfg, out, shard_mb=0.035):
    from vtn.preparation.shards import write_shards

    for split in ("train", "val", "test"):
        write_shards(cfg, split, os.path.join(out, split), shard_size_mb=shard_mb, seed=0, log=lambda line: None)


@pytest.fixture(scope="module")
def shards_dir(synthetic_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shards"))
    write_all_splits(tiny_cfg(*synthetic_opts(synthetic_dir)), out)
    return out


def shard_cfg(synthetic_dir, shards_dir, *opts):
    return tiny_cfg(
        *synthetic_opts(synthetic_dir),
        "TRAIN.DATASET", "shards", "TEST.DATASET", "shards", "DATA.PATH_TO_DATA_DIR", shards_dir, *opts,
    )  # fmt: skip


def local_cfg(synthetic_dir, *opts):
    return tiny_cfg(*synthetic_opts(synthetic_dir), *opts)


def test_the_split_has_several_shards_that_do_not_divide_the_ranks(shards_dir):
    with open(os.path.join(shards_dir, "train", "index.json")) as f:
        index = ShardIndex.from_json(f.read(), "index")
    counts = [s["samples"] for s in index.shards]
    assert len(counts) >= 3 and len(set(counts)) > 1  # the cases below mean something


@pytest.mark.parametrize("protocol", ["multi_view", "full_video"])
def test_test_views_are_the_frames_of_the_local_files(synthetic_dir, shards_dir, protocol):
    local = build_dataset(local_cfg(synthetic_dir), "test", protocol)
    shards = build_dataset(shard_cfg(synthetic_dir, shards_dir), "test", protocol)
    where = {p: i for i, p in enumerate(shards.paths)}
    assert len(where) == len(local.paths) == shards.num_listed
    for i, path in enumerate(local.paths):
        j = where[os.path.relpath(path, synthetic_dir)]
        assert shards.labels[j] == local.labels[i]
        for view in range(local.num_views):
            a, b = local[i * local.num_views + view], shards[j * shards.num_views + view]
            assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["frame_idx"], b["frame_idx"])


def test_training_clips_are_the_frames_of_the_local_files_for_the_same_draws(synthetic_dir, shards_dir):
    local = build_dataset(local_cfg(synthetic_dir), "train")
    shards = build_dataset(shard_cfg(synthetic_dir, shards_dir), "train")
    where = {p: i for i, p in enumerate(shards.paths)}
    for i in range(0, len(local.paths), 3):
        j = where[os.path.relpath(local.paths[i], synthetic_dir)]
        a = local.load_view(i, 0, 0, np.random.default_rng(5), 5)
        b = shards.load_view(j, 0, 0, np.random.default_rng(5), 5)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def epoch_batches(loader, epoch, start=0):
    shuffle_dataset(loader, epoch, start)
    return [(b["video_idx"].tolist(), b["frames"]) for b in loader]


def rank_loader(cfg, rank, world, workers):
    """The training loader of `rank` of `world` (the sampler that build_loader makes under torch.distributed)."""
    cfg.defrost()
    cfg.DATA_LOADER.NUM_WORKERS = workers
    loader = build_loader(cfg, "train")
    sampler = loader.dataset.batch_sampler(cfg.TRAIN.BATCH_SIZE, rank, world, workers, True)
    return torch.utils.data.DataLoader(
        loader.dataset, batch_sampler=sampler, num_workers=workers, collate_fn=loader.collate_fn
    )


@pytest.mark.parametrize("world,workers,batch", [(2, 2, 2), (3, 2, 1), (2, 0, 3)])
def test_every_rank_gets_the_same_number_of_batches_and_no_sample_twice(
    synthetic_dir, shards_dir, world, workers, batch
):
    cfg = shard_cfg(synthetic_dir, shards_dir, "TRAIN.BATCH_SIZE", batch)
    seen, counts = [], []
    for rank in range(world):
        batches = epoch_batches(rank_loader(cfg, rank, world, workers), epoch=1)
        counts.append(len(batches))
        seen += [v for ids, _ in batches for v in ids]
    total = 12  # the synthetic train split
    assert counts == [(total // world) // batch] * world
    assert len(seen) == len(set(seen)) and total - len(seen) < world * batch


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_epoch_reads_the_batches_of_an_uninterrupted_one(synthetic_dir, shards_dir, workers):
    cfg = shard_cfg(synthetic_dir, shards_dir, "TRAIN.BATCH_SIZE", 2, "DATA_LOADER.NUM_WORKERS", workers)
    loader = build_loader(cfg, "train")
    full = epoch_batches(loader, epoch=2)
    assert len(full) == 6
    for start in (1, 3, 5):
        tail = epoch_batches(build_loader(cfg, "train"), epoch=2, start=start)
        assert [ids for ids, _ in tail] == [ids for ids, _ in full[start:]]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(tail, full[start:]))
    other = epoch_batches(loader, epoch=3)
    assert [ids for ids, _ in other] != [ids for ids, _ in full]


def test_a_run_resumed_with_other_workers_keeps_the_order_of_its_epoch(synthetic_dir, shards_dir):
    cfg = shard_cfg(synthetic_dir, shards_dir, "TRAIN.BATCH_SIZE", 2, "DATA_LOADER.NUM_WORKERS", 2)
    full = epoch_batches(build_loader(cfg, "train"), epoch=0)
    state = build_loader(cfg, "train").batch_sampler.state_dict()
    cfg.defrost()
    cfg.DATA_LOADER.NUM_WORKERS = 0
    loader = build_loader(cfg, "train")
    assert isinstance(loader.batch_sampler, ShardBatchSampler)
    loader.batch_sampler.load_state_dict(state, 0)
    tail = epoch_batches(loader, epoch=0, start=2)
    assert [ids for ids, _ in tail] == [ids for ids, _ in full[2:]]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(tail, full[2:]))


def test_a_lane_reads_runs_of_samples_in_few_requests(synthetic_dir, shards_dir):
    cfg = shard_cfg(synthetic_dir, shards_dir, "TRAIN.BATCH_SIZE", 2, "DATA_LOADER.NUM_WORKERS", 0)
    loader = build_loader(cfg, "train")
    epoch_batches(loader, epoch=0)
    shards = len(loader.dataset.index.shards)
    assert 0 < loader.dataset.fetcher.requests <= shards + 1  # one run per shard (a lane may start mid-shard)


def test_a_test_split_without_shards_reads_val(synthetic_dir, shards_dir, tmp_path):
    root = str(tmp_path / "shards")
    shutil.copytree(shards_dir, root)
    shutil.rmtree(os.path.join(root, "test"))
    dataset = build_dataset(shard_cfg(synthetic_dir, root), "test")
    assert dataset.url == os.path.join(root, "val")


def test_a_missing_index_or_shard_is_one_line_at_start(synthetic_dir, shards_dir, tmp_path):
    with pytest.raises(DatasetError, match=r"train/index.json does not exist.*make_shards.py"):
        build_dataset(shard_cfg(synthetic_dir, str(tmp_path)), "train")
    root = str(tmp_path / "shards")
    shutil.copytree(shards_dir, root)
    os.remove(os.path.join(root, "train", "shard-000001.tar"))
    with pytest.raises(DatasetError, match=r"1 of the \d+ shards .* missing, e.g. .*shard-000001.tar"):
        build_dataset(shard_cfg(synthetic_dir, root), "train")
    with open(os.path.join(root, "val", "index.json"), "w") as f:
        f.write('{"format": "something else"}')
    with pytest.raises(DatasetError, match="not an index of tools/make_shards.py"):
        build_dataset(shard_cfg(synthetic_dir, root), "val")


def test_a_damaged_sample_is_replaced_in_training_and_reported_in_testing(synthetic_dir, shards_dir, tmp_path):
    root = str(tmp_path / "shards")
    shutil.copytree(shards_dir, root)
    cfg = shard_cfg(synthetic_dir, root)
    for split in ("train", "test"):
        index = build_dataset(cfg, split).index
        s = index.samples
        path = os.path.join(root, split, index.shards[s["shard"][0]]["name"])
        with open(path, "r+b") as f:  # the video bytes of sample 0 (after its 512-byte header) become zeros
            f.seek(s["offset"][0] + 512)
            f.write(bytes(s["size"][0] - 1024 - 512))
    train = build_dataset(cfg, "train")
    item = train[(0, 0, 0)]
    assert item["ok"] and item["decode_failures"] == 1 and item["video_idx"] != 0
    test = build_dataset(cfg, "test")
    assert not test[0]["ok"] and test[test.num_views]["ok"]
