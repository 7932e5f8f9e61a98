"""Kinetics-400/600/700 in either of two layouts of DATA.PATH_TO_DATA_DIR, told apart by the csv's header:

- PySlowFast's: `{train,val,test}.csv` with `path label` lines. Labels are integers, or class names mapped
  through DATA.CLASS_INDEX_FILE (json {name: id}, or one name per line; names may contain the separator).
  Relative paths are joined to DATA.PATH_PREFIX, or to the data folder when no prefix is set.
- The official release as the CVDF download scripts lay it out: `annotations/{train,val,test}.csv` with the
  header `label,youtube_id,time_start,time_end,split[,is_cc]`, and the videos in `train/`, `val/`, `test/`
  (under DATA.PATH_PREFIX when set), flat or in class folders, named `{youtube_id}_{start:06d}_{end:06d}` with
  any video extension. Class ids are the class names of annotations/train.csv sorted alphabetically (the
  published label maps' order), unless DATA.CLASS_INDEX_FILE gives them.

A missing test.csv, or an official test.csv without labels (Kinetics-600/700), falls back to val.csv with a
warning: their test labels are not public.

DATA.PATH_TO_DATA_DIR and DATA.PATH_PREFIX may be s3:// prefixes (both layouts), or http(s):// URLs for
PySlowFast's lists (a folder over http cannot be listed, which the official layout needs).
"""

import csv
import logging
import os
from typing import Optional

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import (
    AnnotationError,
    class_names_from,
    data_dir_of,
    in_data_dir,
    open_annotation,
    parse_label,
    read_class_index,
    read_path_label_csv,
    resolve_path,
)
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.files import index_videos
from vtn.datasets.video_dataset import VideoDataset

logger = logging.getLogger(__name__)

OFFICIAL_COLUMNS = ("youtube_id", "time_start", "time_end")


def class_index_path(cfg) -> str:
    return in_data_dir(cfg.DATA.CLASS_INDEX_FILE, cfg.DATA.PATH_TO_DATA_DIR)


def annotation_file(data_dir: str, split: str) -> Optional[str]:
    """`{split}.csv` of the data folder, else of its `annotations/` folder; None when neither exists."""
    for path in (storage.join(data_dir, f"{split}.csv"), storage.join(data_dir, "annotations", f"{split}.csv")):
        if storage.isfile(path):
            return path
    return None


def csv_header(path: str) -> list[str]:
    """The official release's column names when the file starts with its header, else []."""
    with open_annotation(path, head=True) as f:
        first = next(csv.reader(f), [])
    names = [c.strip().lower() for c in first]
    return names if all(c in names for c in OFFICIAL_COLUMNS) else []


def split_file(data_dir: str, split: str) -> str:
    """The annotation file of `split`; the test split falls back to val when its labels are not public."""
    path = annotation_file(data_dir, split)
    if split == "test" and (path is None or (csv_header(path) and "label" not in csv_header(path))):
        fallback = annotation_file(data_dir, "val")
        what = f"{storage.join(data_dir, 'test.csv')} does not exist" if path is None else f"{path} has no labels"
        logger.warning("%s: testing on %s instead", what, fallback)
        path = fallback
    if path is None:
        raise AnnotationError(
            f"{storage.join(data_dir, split + '.csv')} does not exist, nor annotations/{split}.csv: expected "
            "PySlowFast's `path label` lists or the official Kinetics annotations "
            "(label,youtube_id,time_start,time_end,split)"
        )
    return path


def clip_name(row: dict, where: str) -> str:
    """`{youtube_id}_{time_start:06d}_{time_end:06d}`, the name the download scripts give a clip."""
    try:
        start, end = (int(float(row[k])) for k in ("time_start", "time_end"))
    except (TypeError, ValueError):
        raise AnnotationError(
            f"{where}: time_start and time_end must be seconds, got {row.get('time_start')!r} and "
            f"{row.get('time_end')!r}"
        ) from None
    youtube_id = (row.get("youtube_id") or "").strip()
    if not youtube_id:
        raise AnnotationError(f"{where}: the youtube_id is empty")
    return f"{youtube_id}_{start:06d}_{end:06d}"


def read_official_rows(path: str) -> list[tuple[str, str, str]]:
    """(clip name, label name, where) of every line of an official annotation csv."""
    rows = []
    with open_annotation(path) as f:
        reader = csv.reader(f)
        header = [c.strip().lower() for c in next(reader, [])]
        for lineno, values in enumerate(reader, 2):
            if not values or not "".join(values).strip():
                continue
            where = f"{path}, line {lineno}"
            if len(values) < len(header) - 1:  # is_cc may be left out
                raise AnnotationError(f"{where}: expected the columns {','.join(header)}, got {values}")
            row = dict(zip(header, (v.strip() for v in values)))
            rows.append((clip_name(row, where), row.get("label", ""), where))
    if not rows:
        raise AnnotationError(f"annotation file {path} lists no videos")
    return rows


def official_classes(data_dir: str) -> dict[str, int]:
    """Class name -> id: the labels of the training annotations, sorted alphabetically."""
    path = annotation_file(data_dir, "train")
    if path is None or not csv_header(path):
        raise AnnotationError(
            f"the class list comes from the official training annotations, and {data_dir} has no "
            "annotations/train.csv: set DATA.CLASS_INDEX_FILE to a class list"
        )
    names = sorted({label for _, label, _ in read_official_rows(path) if label})
    return {name: i for i, name in enumerate(names)}


def read_official_layout(cfg, split: str, path: str):
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    index_file = class_index_path(cfg)
    mapping = read_class_index(index_file) if index_file else official_classes(data_dir)
    split_name = os.path.splitext(os.path.basename(path))[0]  # "val" when the test split fell back to it
    video_dir = storage.join(cfg.DATA.PATH_PREFIX or data_dir, split_name)
    on_disk, ignored = index_videos(video_dir)
    paths, labels = [], []
    for name, label, where in read_official_rows(path):
        if not label:
            raise AnnotationError(f"{where}: the label is empty")
        paths.append(on_disk.get(name, storage.join(video_dir, name + ".mp4")))
        labels.append(parse_label(label, mapping, where))
    return paths, labels, class_names_from(mapping), ignored


def read_kinetics_layout(cfg, split: str):
    """(paths, labels, class names or None, non-video files ignored) of one split."""
    data_dir = data_dir_of(cfg, "with train.csv / val.csv / test.csv (or the official annotations/)")
    path = split_file(data_dir, split)
    if csv_header(path):
        return read_official_layout(cfg, split, path)
    index_file = class_index_path(cfg)
    mapping = read_class_index(index_file) if index_file else None
    paths, labels = read_path_label_csv(path, cfg.DATA.PATH_LABEL_SEPARATOR, mapping)
    paths = [resolve_path(p, cfg.DATA.PATH_PREFIX, data_dir) for p in paths]
    return paths, labels, class_names_from(mapping) if mapping else None, 0


@DATASET_REGISTRY.register_as("kinetics")
def build_kinetics(cfg, split: str, view: ViewSpec) -> VideoDataset:
    paths, labels, names, ignored = read_kinetics_layout(cfg, split)
    return VideoDataset(cfg, split, view, paths, labels, names, ignored_files=ignored)
