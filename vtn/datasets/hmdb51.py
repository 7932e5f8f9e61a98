"""HMDB51 as its archives unpack, side by side in DATA.PATH_TO_DATA_DIR:

    <class>/<video>.avi                                  the 51 class folders (DATA.PATH_PREFIX holds them when set)
    testTrainMulti_7030_splits/<class>_test_splitN.txt   `<video>.avi k` lines: 1 = train, 2 = test, 0 = unused

DATA.SPLIT_ID (1-3) picks N. Class ids are the class names (from the split files) sorted alphabetically,
unless DATA.CLASS_INDEX_FILE gives them. HMDB51 has no validation split: val and test both read the test
videos (k = 2). Unused videos (k = 0) are left out.
"""

import logging
import re

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import AnnotationError, class_names_from, data_dir_of, open_annotation, read_class_index
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.files import check_listable
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.logging import log_once

logger = logging.getLogger(__name__)

SPLITS_DIR = "testTrainMulti_7030_splits"
ROLE = {"train": "1", "val": "2", "test": "2"}


def split_files(folder: str, split_id: int) -> dict[str, str]:
    """class name -> its split file for `split_id`."""
    check_listable(folder)
    if not storage.isdir(folder):
        raise AnnotationError(f"{folder} does not exist (expected HMDB51's split files, {SPLITS_DIR}/)")
    pattern = re.compile(rf"^(.+)_test_split{split_id}\.txt$")
    files = {m.group(1): storage.join(folder, n) for n in storage.listdir(folder) if (m := pattern.match(n))}
    if not files:
        raise AnnotationError(f"{folder} has no <class>_test_split{split_id}.txt files")
    return files


def read_split_file(path: str, role: str) -> list[str]:
    """The video names of one class's split file whose role is `role` ('1' train, '2' test)."""
    names = []
    with open_annotation(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise AnnotationError(
                    f"{path}, line {lineno}: expected '<video>.avi k' with k = 0 (unused), 1 (train) or 2 (test), "
                    f"got {line.strip()!r}"
                )
            if fields[1] == role:
                names.append(fields[0])
    return names


@DATASET_REGISTRY.register_as("hmdb51")
def build_hmdb51(cfg, split: str, view: ViewSpec) -> VideoDataset:
    root = data_dir_of(cfg, f"with the class folders and {SPLITS_DIR}/")
    files = split_files(storage.join(root, SPLITS_DIR), cfg.DATA.SPLIT_ID)
    if cfg.DATA.CLASS_INDEX_FILE:
        mapping = read_class_index(cfg.DATA.CLASS_INDEX_FILE)
    else:
        mapping = {name: i for i, name in enumerate(sorted(files))}
    if split != "train":
        log_once(
            logger,
            logging.INFO,
            f"HMDB51 has no validation split: val and test both read test split {cfg.DATA.SPLIT_ID}",
        )
    video_root = cfg.DATA.PATH_PREFIX or root
    paths, labels = [], []
    for name, path in files.items():
        if name not in mapping:
            raise AnnotationError(f"{path}: class {name!r} is not in the class-index file {cfg.DATA.CLASS_INDEX_FILE}")
        for video in read_split_file(path, ROLE[split]):
            paths.append(storage.join(video_root, name, video))
            labels.append(mapping[name])
    if not paths:
        raise AnnotationError(f"the split files of {SPLITS_DIR}/ list no {split} videos for split {cfg.DATA.SPLIT_ID}")
    return VideoDataset(cfg, split, view, paths, labels, class_names_from(mapping))
