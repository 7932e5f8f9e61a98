"""Kinetics-400 in PySlowFast's layout: DATA.PATH_TO_DATA_DIR/{train,val,test}.csv with `path label` lines.

Labels are integers, or class names mapped through DATA.CLASS_INDEX_FILE (json {name: id}, or one name per
line). Relative paths are joined to DATA.PATH_PREFIX, or to the data folder when no prefix is set. A missing
test.csv falls back to val.csv with a warning.
"""

import logging
import os

from vtn.datasets.annotations import class_names_from, read_class_index, read_path_label_csv, resolve_path
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.errors import DatasetError

logger = logging.getLogger(__name__)


def split_csv(data_dir: str, split: str) -> str:
    path = os.path.join(data_dir, f"{split}.csv")
    if split == "test" and not os.path.isfile(path):
        fallback = os.path.join(data_dir, "val.csv")
        logger.warning("%s does not exist: testing on %s instead", path, fallback)
        return fallback
    return path


def class_index_path(cfg) -> str:
    f = cfg.DATA.CLASS_INDEX_FILE
    return f if not f or os.path.isabs(f) else os.path.join(cfg.DATA.PATH_TO_DATA_DIR, f)


def read_kinetics_layout(cfg, split: str):
    """(paths, labels, class names or None) of one split."""
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    if not data_dir:
        raise DatasetError("DATA.PATH_TO_DATA_DIR is empty: set it to the folder with train.csv / val.csv / test.csv")
    index_file = class_index_path(cfg)
    mapping = read_class_index(index_file) if index_file else None
    paths, labels = read_path_label_csv(split_csv(data_dir, split), cfg.DATA.PATH_LABEL_SEPARATOR, mapping)
    paths = [resolve_path(p, cfg.DATA.PATH_PREFIX, data_dir) for p in paths]
    return paths, labels, class_names_from(mapping) if mapping else None


@DATASET_REGISTRY.register_as("kinetics")
def build_kinetics(cfg, split: str, protocol: str) -> VideoDataset:
    paths, labels, names = read_kinetics_layout(cfg, split)
    return VideoDataset(cfg, split, protocol, paths, labels, names)
