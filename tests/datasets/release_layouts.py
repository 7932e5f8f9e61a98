"""Official release layouts written the way their archives unpack, with real (tiny) videos and the quirks of
the real files: CRLF line endings, a byte-order mark, quoted class names with spaces and commas, names whose
case differs between a list and the disk, odd characters in file names, unused entries, videos listed but
not downloaded, and files that are not videos. Each builder returns what a test needs to check the dataset."""

import json
import os
import shutil

import av
import numpy as np


def source_videos(synthetic_dir: str) -> list[str]:
    """Real encoded videos to copy into a layout (the tests' synthetic dataset)."""
    with open(os.path.join(synthetic_dir, "train.csv")) as f:
        return [os.path.join(synthetic_dir, line.split()[0]) for line in f if line.strip()]


def copy_video(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)


def write_webm(path: str, frames: int = 12, size=(48, 32)) -> None:
    """A real VP8 WebM video (Something-Something v2's format)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, "w", format="webm") as c:
        stream = c.add_stream("libvpx", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), 20 * i % 255, dtype=np.uint8)
            for p in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in stream.encode():
            c.mux(p)


# ---------------------------------------------------------------------------------------------------- Kinetics
KINETICS_CLASSES = ["air drumming", "abseiling", "passing American football (in game)", "zumba"]


def kinetics_official(root: str, synthetic_dir: str, test_labels: bool = False) -> dict:
    """annotations/{train,val,test}.csv (CRLF, a BOM on train.csv, quoted names, is_cc on train) and
    train/ flat, val/ in class folders; extensions .mp4, .mkv, .webm; one clip of each split not downloaded;
    a partial download and a checksum file in train/."""
    src = source_videos(synthetic_dir)
    rows = {"train": [], "val": [], "test": []}
    expected = {"train": [], "val": [], "test": []}
    exts = [".mp4", ".mkv", ".webm"]
    for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
        for c, label in enumerate(KINETICS_CLASSES):
            for k in range(per_class):
                youtube_id = f"{split[:2]}{c}-_x{k}Y"  # ids contain '-' and '_'
                start = 10 * k + c
                name = f"{youtube_id}_{start:06d}_{start + 10:06d}"
                rows[split].append((label, youtube_id, start, start + 10))
                if split == "train" and c == 3 and k == 1:
                    continue  # listed, never downloaded
                folder = os.path.join(root, split) if split != "val" else os.path.join(root, split, label)
                path = os.path.join(folder, name + exts[(c + k) % 3])
                copy_video(src[(c * 2 + k) % len(src)], path)
                expected[split].append((path, label))
    ann = os.path.join(root, "annotations")
    os.makedirs(ann, exist_ok=True)

    def line(values):
        return ",".join(f'"{v}"' if isinstance(v, str) and ("," in v or " " in v) else str(v) for v in values)

    train = ["label,youtube_id,time_start,time_end,split,is_cc"] + [line((*r, "train", 0)) for r in rows["train"]]
    with open(os.path.join(ann, "train.csv"), "w", encoding="utf-8-sig", newline="") as f:
        f.write("\r\n".join(train) + "\r\n")
    val = ["label,youtube_id,time_start,time_end,split"] + [line((*r, "val")) for r in rows["val"]]
    with open(os.path.join(ann, "val.csv"), "w", newline="") as f:
        f.write("\r\n".join(val) + "\r\n")
    if test_labels:
        test = ["label,youtube_id,time_start,time_end,split"] + [line((*r, "test")) for r in rows["test"]]
    else:  # Kinetics-600/700: the test labels are not public
        test = ["youtube_id,time_start,time_end,split"] + [line((*r[1:], "test")) for r in rows["test"]]
    with open(os.path.join(ann, "test.csv"), "w", newline="") as f:
        f.write("\n".join(test) + "\n")
    for junk in ("abc_000001_000011.mp4.part", "md5sums.txt"):
        with open(os.path.join(root, "train", junk), "w") as f:
            f.write("not a video\n")
    missing = [os.path.join(root, "train", f"tr3-_x1Y_{13:06d}_{23:06d}.mp4")]
    return {"expected": expected, "classes": sorted(KINETICS_CLASSES), "missing": missing, "ignored": {"train": 2}}


# ---------------------------------------------------------------------------------------------------- UCF101
UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]


def ucf101(root: str, synthetic_dir: str) -> dict:
    """UCF-101/<Class>/*.avi and ucfTrainTestlist/ (CRLF lists; the HandstandPushups videos are named
    v_HandStandPushups_* on disk, as in the release, and v_HandstandPushups_* in the lists)."""
    src = source_videos(synthetic_dir)
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    with open(os.path.join(lists, "classInd.txt"), "w", newline="") as f:
        f.write("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(UCF_CLASSES)))
    expected = {}
    for split_id in (1, 2):
        train, test = [], []
        for c, name in enumerate(UCF_CLASSES):
            for g in range(1, 4):
                listed = f"{name}/v_{name}_g{g:02d}_c01.avi"
                on_disk = listed.replace("v_HandstandPushups", "v_HandStandPushups")
                copy_video(src[(c + g) % len(src)], os.path.join(root, "UCF-101", on_disk))
                # split 1 tests on group 1, split 2 on group 2
                (test if g == split_id else train).append((listed, on_disk, c))
        with open(os.path.join(lists, f"trainlist0{split_id}.txt"), "w", newline="") as f:
            f.write("".join(f"{listed} {c + 1}\r\n" for listed, _, c in train))
        with open(os.path.join(lists, f"testlist0{split_id}.txt"), "w", newline="") as f:
            f.write("".join(f"{listed}\r\n" for listed, _, _ in test))
        expected[split_id] = {
            "train": [(os.path.join(root, "UCF-101", d), c) for _, d, c in train],
            "test": [(os.path.join(root, "UCF-101", d), c) for _, d, c in test],
        }
    return {"expected": expected, "classes": UCF_CLASSES}


# ---------------------------------------------------------------------------------------------------- HMDB51
HMDB_CLASSES = ["brush_hair", "cartwheel", "smile"]


def hmdb51(root: str, synthetic_dir: str) -> dict:
    """The class folders and testTrainMulti_7030_splits/ (lines with a trailing space; 0 unused, 1 train,
    2 test), video names with parentheses, '&', '!' and a comma."""
    src = source_videos(synthetic_dir)
    splits = os.path.join(root, "testTrainMulti_7030_splits")
    os.makedirs(splits, exist_ok=True)
    expected = {1: {"train": [], "test": []}, 2: {"train": [], "test": []}}
    odd = ["Faith_Hill_-_Breathe_(Music_Video)", "Tom_&_Jerry!", "A_Beautiful_Mind,_3", "plain"]
    for c, name in enumerate(sorted(HMDB_CLASSES)):
        videos = [f"{stem}_{name}_h_nm_np1_fr_goo_{c}.avi" for stem in odd]
        for i, video in enumerate(videos):
            copy_video(src[(c + i) % len(src)], os.path.join(root, name, video))
        for split_id in (1, 2):
            roles = ["1", "1", "2", "0"] if split_id == 1 else ["2", "1", "1", "0"]
            with open(os.path.join(splits, f"{name}_test_split{split_id}.txt"), "w") as f:
                f.write("".join(f"{v} {r} \n" for v, r in zip(videos, roles)))
            for v, r in zip(videos, roles):
                if r != "0":
                    expected[split_id]["train" if r == "1" else "test"].append((os.path.join(root, name, v), c))
    return {"expected": expected, "classes": sorted(HMDB_CLASSES)}


# ---------------------------------------------------------------------------------------------------- SSv2
SSV2_CLASSES = ["Pushing something from left to right", "Pushing something from right to left", "Holding something"]


def ssv2(root: str) -> dict:
    """labels/{labels,train,validation,test}.json (ids as strings) and 20bn-something-something-v2/<id>.webm."""
    labels = os.path.join(root, "labels")
    os.makedirs(labels, exist_ok=True)
    with open(os.path.join(labels, "labels.json"), "w") as f:
        json.dump({c: str(i) for i, c in enumerate(SSV2_CLASSES)}, f, indent=4)
    videos = os.path.join(root, "20bn-something-something-v2")
    write_webm(os.path.join(videos, "seed.webm"))
    expected = {}
    next_id = 1000
    for split, per_class in (("train", 2), ("validation", 1)):
        items, expected[split] = [], []
        for c, name in enumerate(SSV2_CLASSES):
            for _ in range(per_class):
                template = name.replace("something", "[something]", 1)
                items.append({"id": str(next_id), "label": name.lower(), "template": template, "placeholders": ["x"]})
                shutil.copyfile(os.path.join(videos, "seed.webm"), os.path.join(videos, f"{next_id}.webm"))
                expected[split].append((os.path.join(videos, f"{next_id}.webm"), c))
                next_id += 1
        with open(os.path.join(labels, f"{split}.json"), "w") as f:
            json.dump(items, f)
    with open(os.path.join(labels, "test.json"), "w") as f:
        json.dump([{"id": "1"}, {"id": "2"}], f)
    os.remove(os.path.join(videos, "seed.webm"))
    return {"expected": expected, "classes": SSV2_CLASSES}


# ---------------------------------------------------------------------------------------------------- folders
FOLDER_CLASSES = ["cats", "dogs", "fish tank"]


def class_folders(root: str, synthetic_dir: str, with_test: bool = False) -> dict:
    """train/<class>/, val/<class>/ (optional test/), videos one level deeper in places, with a notes file, a
    thumbnail and a hidden file that are not videos."""
    src = source_videos(synthetic_dir)
    expected = {}
    for split, per_class in (("train", 2), ("val", 1)) + ((("test", 1),) if with_test else ()):
        expected[split] = []
        for c, name in enumerate(FOLDER_CLASSES):
            for k in range(per_class):
                sub = "day 2" if k == 1 else ""
                path = os.path.join(root, split, name, sub, f"clip {k}.MP4" if c == 0 else f"clip_{k}.mp4")
                copy_video(src[(c + k) % len(src)], path)
                expected[split].append((path, c))
        for junk in ("notes.txt", "thumb.jpg", ".DS_Store"):
            with open(os.path.join(root, split, FOLDER_CLASSES[0], junk), "w") as f:
                f.write("x")
    return {"expected": expected, "classes": FOLDER_CLASSES, "ignored": 2}
