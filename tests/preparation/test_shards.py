"""vtn/preparation/shards.py on the tests' synthetic dataset: every video once with its bytes and probe facts,
ranged reads of one sample, the seeded shuffle, deterministic bytes, webdataset reading the shards, resuming after
a kill, a rerun with another plan, unreadable and missing videos, and the index's fingerprint."""

import io
import json
import os
import shutil
import tarfile

import pytest

from tests.datasets.bad_files import make_bad_files
from tests.helpers import synthetic_opts, tiny_cfg
from vtn import storage
from vtn.datasets.build import build_dataset
from vtn.datasets.fingerprint import relative_path
from vtn.datasets.shard_index import INDEX_NAME, ShardIndex, shard_facts_name, shard_name
from vtn.preparation.shards import write_shards
from vtn.preparation.shards_plan import Video, pack
from vtn.utils.errors import UserError
from vtn.video.decoder import build_decoder

SPLITS = ("train", "val", "test")
SHARD_MB = 0.03  # the synthetic videos are 8-16 kB: 2 or 3 per shard


def quiet(line):
    pass


def index_of(output) -> ShardIndex:
    return ShardIndex.from_json(storage.read_bytes(storage.join(output, INDEX_NAME)).decode("utf-8"), output)


def files_of(folder) -> dict:
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def members(path) -> list[tuple[str, bytes, tarfile.TarInfo]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read(), m) for m in tar.getmembers()]


@pytest.fixture(scope="module")
def cfg(synthetic_dir):
    return tiny_cfg(*synthetic_opts(synthetic_dir))


@pytest.fixture(scope="module")
def written(cfg, tmp_path_factory):
    """The three splits written with seed 0, one worker: split -> (output folder, report)."""
    root = tmp_path_factory.mktemp("shards")
    return {s: (str(root / s), write_shards(cfg, s, str(root / s), SHARD_MB, 1, 0, log=quiet)) for s in SPLITS}


def test_pack_cuts_at_the_limit_and_puts_a_larger_video_alone():
    videos = [Video(i, f"v{i}", f"v{i}", 0, size) for i, size in enumerate([5, 5, 5, 20, 1, 3, 6])]
    shards = pack(videos, 10)
    assert [[v.size for v in shard] for shard in shards] == [[5, 5], [5], [20], [1, 3, 6]]


def shard_samples(output, shard) -> list[tuple[bytes, dict, tarfile.TarInfo]]:
    """(video bytes, json facts, video member) of each sample of a shard, checking the member names."""
    path = os.path.join(output, shard["name"])
    found = members(path)
    assert len(found) == 2 * shard["samples"] and os.path.getsize(path) == shard["bytes"]
    samples = []
    for (video_name, video, info), (json_name, facts, _) in zip(found[::2], found[1::2]):
        facts = json.loads(facts)
        assert (video_name, json_name) == (facts["key"] + ".mp4", facts["key"] + ".json")
        assert "." not in facts["key"]
        samples.append((video, facts, info))
    return samples


@pytest.mark.parametrize("split", SPLITS)
def test_every_video_once_with_its_bytes_and_probed_facts(cfg, written, split):
    output, report = written[split]
    dataset = build_dataset(cfg, split)
    by_source = {relative_path(p, dataset.data_root): (p, label) for p, label in zip(dataset.paths, dataset.labels)}
    index = index_of(output)
    decoder = build_decoder(cfg)
    assert len(index.shards) > 1
    assert [s["name"] for s in index.shards] == [shard_name(n) for n in range(len(index.shards))]
    seen = []
    for number, shard in enumerate(index.shards):
        for video, facts, info in shard_samples(output, shard):
            path, label = by_source[facts["source"]]
            assert video == open(path, "rb").read()
            probe = decoder.probe(path)
            assert facts == {
                "key": facts["key"],
                "label": label,
                "class": dataset.class_names[label],
                "source": facts["source"],
                "frames": probe.num_frames,
                "fps": probe.fps,
                "duration": probe.duration,
            }
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o444)
            seen.append((number, facts))
    assert sorted(f["source"] for _, f in seen) == sorted(by_source)
    assert sorted(f["key"] for _, f in seen) == [f"{i:08d}" for i in range(len(seen))]  # places in the shuffle
    s = index.samples
    assert s["key"] == [f["key"] for _, f in seen] and s["shard"] == [n for n, _ in seen]
    for column in ("label", "source", "frames", "fps", "duration"):
        assert s[column] == [f[column] for _, f in seen]
    assert index.split == split and index.classes == dataset.class_names and index.num_classes == 6
    assert (index.listed, index.seed, index.unreadable, index.missing) == (len(dataset.paths), 0, [], [])
    assert index.extra["dataset"] == "synthetic" and index.extra["bytes"] == sum(x["bytes"] for x in index.shards)
    assert (report.samples, report.shards_written, report.shards_skipped) == (len(seen), len(index.shards), 0)


def test_a_samples_offset_and_size_are_exactly_its_two_members(written):
    output, _ = written["train"]
    index = index_of(output)
    s = index.samples
    for i, key in enumerate(s["key"]):
        shard = storage.join(output, index.shards[s["shard"][i]]["name"])
        data = storage.read_bytes(shard, s["offset"][i], s["offset"][i] + s["size"][i])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = [m.name for m in tar.getmembers()]
            assert json.loads(tar.extractfile(names[1]).read())["source"] == s["source"][i]
        assert names == [key + ".mp4", key + ".json"]
    # consecutive samples of a shard are contiguous: a run of them is one range
    for i in range(len(s["key"]) - 1):
        if s["shard"][i] == s["shard"][i + 1]:
            assert s["offset"][i] + s["size"][i] == s["offset"][i + 1]


def test_shuffled_across_shards_by_the_seed_and_the_same_bytes_again(cfg, written, tmp_path):
    output, _ = written["train"]
    dataset = build_dataset(cfg, "train")
    listed = [relative_path(p, dataset.data_root) for p in dataset.paths]
    order = index_of(output).samples["source"]
    assert order != listed and sorted(order) == sorted(listed)
    again = str(tmp_path / "again")
    write_shards(cfg, "train", again, SHARD_MB, 1, 0, log=quiet)
    assert files_of(again) == files_of(output)
    other = str(tmp_path / "seed1")
    write_shards(cfg, "train", other, SHARD_MB, 1, 1, log=quiet)
    assert index_of(other).samples["source"] != order and index_of(other).seed == 1


def test_webdataset_reads_every_sample(written):
    import webdataset

    output, _ = written["val"]
    index = index_of(output)
    urls = [os.path.join(output, s["name"]) for s in index.shards]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False))
    assert [x["__key__"] for x in samples] == index.samples["key"]
    for sample in samples:
        facts = json.loads(sample["json"])
        assert facts["key"] == sample["__key__"]
        assert sample["mp4"] == open(os.path.join(index.extra["data_dir"], facts["source"]), "rb").read()


def test_a_killed_run_is_resumed_by_redoing_only_the_unfinished_shards(cfg, written, tmp_path):
    output, _ = written["train"]
    reference = files_of(output)
    out = str(tmp_path / "train")
    shutil.copytree(output, out)
    with open(os.path.join(out, shard_name(1)), "r+b") as f:  # killed while writing shard 1: no sidecar
        f.truncate(5000)
    os.remove(os.path.join(out, shard_facts_name(1)))
    with open(os.path.join(out, shard_name(3)), "r+b") as f:  # a tar that is not the one its sidecar describes
        f.truncate(2048)
    with open(os.path.join(out, ".tmp-" + shard_name(2)), "wb") as f:
        f.write(b"half a shard")
    os.remove(os.path.join(out, INDEX_NAME))
    kept = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out) if n.startswith("shard-")}
    report = write_shards(cfg, "train", out, SHARD_MB, 1, 0, log=quiet)
    assert files_of(out) == reference
    changed = {n for n, t in kept.items() if os.stat(os.path.join(out, n)).st_mtime_ns != t}
    assert changed == {shard_name(1), shard_name(3), shard_facts_name(3)}
    assert (report.shards_written, report.shards_skipped) == (2, len(index_of(out).shards) - 2)


def test_a_rerun_with_another_plan_stops_before_writing_anything(cfg, written, tmp_path):
    output, _ = written["test"]
    out = str(tmp_path / "test")
    shutil.copytree(output, out)
    os.remove(os.path.join(out, shard_facts_name(0)))  # an unfinished shard: the run would redo it
    before = {n: (os.stat(os.path.join(out, n)).st_mtime_ns, b) for n, b in files_of(out).items()}
    for seed, size in ((1, SHARD_MB), (0, 2 * SHARD_MB)):
        with pytest.raises(UserError) as e:
            write_shards(cfg, "test", out, size, 1, seed, log=quiet)
        assert "another plan" in str(e.value) and "\n" not in str(e.value)
        assert {n: (os.stat(os.path.join(out, n)).st_mtime_ns, b) for n, b in files_of(out).items()} == before
    os.remove(os.path.join(out, INDEX_NAME))  # the sidecars alone tell the plan too
    with pytest.raises(UserError, match="another plan"):
        write_shards(cfg, "test", out, SHARD_MB, 1, 1, log=quiet)


@pytest.fixture(scope="module")
def broken(synthetic_dir, tmp_path_factory):
    """A copy of the synthetic dataset whose val split lists a truncated video, one that is not on disk, and a good
    one with an upper-case extension."""
    data = tmp_path_factory.mktemp("broken") / "data"
    shutil.copytree(synthetic_dir, data)
    good = os.path.join(data, open(data / "val.csv").readline().split()[0])
    bad = make_bad_files(str(data / "bad"), good)
    with open(data / "val.csv", "a") as f:
        f.write(f"{bad['truncated']} triangle\n{bad['missing']} stripes\n{data / 'bad' / 'SHOUT.MP4'} stripes\n")
    shutil.copyfile(good, data / "bad" / "SHOUT.MP4")
    return str(data), bad


def test_unreadable_videos_are_left_out_and_listed_missing_ones_recorded(broken, tmp_path):
    data, bad = broken
    cfg = tiny_cfg(*synthetic_opts(data))
    out = str(tmp_path / "val")
    report = write_shards(cfg, "val", out, SHARD_MB, 1, 0, log=quiet)
    index = index_of(out)
    assert index.unreadable == ["bad/truncated.mp4"] and index.missing == ["bad/missing.mp4"]
    assert index.extra["missing_labels"] == [5] and "truncated.mp4" in index.extra["unreadable_reasons"][0]
    assert index.listed == 9 and index.num_samples == 7 and "bad/truncated.mp4" not in index.samples["source"]
    assert report.unreadable == [("bad/truncated.mp4", index.extra["unreadable_reasons"][0])] and report.missing == 1
    assert any("bad/truncated.mp4" in line for line in report.lines())
    facts = [json.load(open(os.path.join(out, shard_facts_name(n)))) for n in range(len(index.shards))]
    assert sum(len(f["unreadable"]) for f in facts) == 1
    shout = index.samples["source"].index("bad/SHOUT.MP4")
    number, key = index.samples["shard"][shout], index.samples["key"][shout]
    assert [m[0] for m in members(os.path.join(out, shard_name(number))) if m[0].startswith(key)] == [
        key + ".mp4",
        key + ".json",
    ]


def test_the_fingerprint_is_the_evaluators_of_the_local_dataset(cfg, written, broken, tmp_path):
    from vtn.engine.evaluator import dataset_fingerprint

    for split in SPLITS:
        dataset = build_dataset(cfg, split)
        expected = dataset_fingerprint(dataset.paths, dataset.labels, dataset.data_root)
        assert index_of(written[split][0]).fingerprint == expected
    data, bad = broken
    cfg = tiny_cfg(*synthetic_opts(data))
    out = str(tmp_path / "val")
    write_shards(cfg, "val", out, SHARD_MB, 1, 0, log=quiet)
    dataset = build_dataset(cfg, "val")
    kept = [(p, label) for p, label in zip(dataset.paths, dataset.labels) if p != bad["truncated"]]
    assert len(kept) == len(dataset.paths) - 1
    expected = dataset_fingerprint([p for p, _ in kept], [label for _, label in kept], dataset.data_root)
    assert index_of(out).fingerprint == expected


def test_an_interrupted_shard_never_shows_under_its_name(cfg, written, tmp_path, monkeypatch):
    output, _ = written["val"]
    out = str(tmp_path / "val")
    reads, listed = [], []
    read_bytes = storage.read_bytes

    def interrupted(path, *args):
        reads.append(path)
        if len(reads) == 2:  # the second video of shard 0: its tar is half written, under a temporary name
            listed.append(os.listdir(out))
            raise KeyboardInterrupt
        return read_bytes(path, *args)

    monkeypatch.setattr(storage, "read_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_shards(cfg, "val", out, SHARD_MB, 1, 0, log=quiet)
    assert listed == [[".tmp-" + shard_name(0)]]  # what a kill would leave: a temporary, which a rerun removes
    assert os.listdir(out) == []  # no shard, no sidecar, no temporary
    monkeypatch.setattr(storage, "read_bytes", read_bytes)
    write_shards(cfg, "val", out, SHARD_MB, 1, 0, log=quiet)
    assert files_of(out) == files_of(output)


def test_shards_written_straight_to_object_storage(cfg, written, s3_env):
    output, _ = written["train"]
    url = s3_env + "/k/train"
    report = write_shards(cfg, "train", url, SHARD_MB, 2, 0, log=quiet)
    assert report.index_url == url + "/index.json"
    assert storage.read_bytes(report.index_url) == open(os.path.join(output, INDEX_NAME), "rb").read()
    assert storage.listdir(url) == sorted(os.listdir(output))  # no temporary left in the bucket
    for name in os.listdir(output):
        assert storage.read_bytes(storage.join(url, name)) == open(os.path.join(output, name), "rb").read(), name
    storage.remove(storage.join(url, shard_facts_name(2)))  # an unfinished shard
    again = write_shards(cfg, "train", url, SHARD_MB, 1, 0, log=quiet)
    assert (again.shards_written, again.shards_skipped) == (1, len(index_of(output).shards) - 1)
    assert (
        storage.read_bytes(storage.join(url, shard_facts_name(2)))
        == open(os.path.join(output, shard_facts_name(2)), "rb").read()
    )
    with pytest.raises(UserError, match="another plan"):
        write_shards(cfg, "train", url, SHARD_MB, 1, 5, log=quiet)


def test_videos_read_from_object_storage_give_the_same_shards(synthetic_dir, s3_env, tmp_path):
    from tests.datasets import release_layouts

    local = str(tmp_path / "folders")
    layout = release_layouts.class_folders(local, synthetic_dir)
    for path in storage.walk_files(local):
        storage.upload_file(path, s3_env + "/data/" + os.path.relpath(path, local).replace(os.sep, "/"))
    outputs = []
    for data in (local, s3_env + "/data"):
        opts = ("TRAIN.DATASET", "folder", "MODEL.NUM_CLASSES", len(layout["classes"]))
        out = str(tmp_path / f"out{len(outputs)}")
        write_shards(tiny_cfg(*synthetic_opts(data), *opts), "train", out, SHARD_MB, 1, 0, log=quiet)
        outputs.append(files_of(out))
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) > 3
    assert all(outputs[0][name] == outputs[1][name] for name in outputs[0] if name != INDEX_NAME)
    local_index, remote_index = (ShardIndex.from_json(o[INDEX_NAME].decode(), "index") for o in outputs)
    assert remote_index.samples == local_index.samples and remote_index.fingerprint == local_index.fingerprint
    assert remote_index.extra["data_dir"] == s3_env + "/data"
