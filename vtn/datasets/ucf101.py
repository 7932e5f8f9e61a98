"""UCF101 as its two official archives unpack, side by side in DATA.PATH_TO_DATA_DIR:

    UCF-101/<Class>/v_<Class>_gXX_cYY.avi       the videos (DATA.PATH_PREFIX replaces this folder when set)
    ucfTrainTestlist/classInd.txt                `1 ApplyEyeMakeup` (ids 1-based there, 0-based in vtn)
    ucfTrainTestlist/trainlist0N.txt             `ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`
    ucfTrainTestlist/testlist0N.txt              `ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`

DATA.SPLIT_ID (1-3) picks the split. UCF101 has no validation split: val and test both read testlist0N.txt.
A class is the class folder of a line (its label, when the line has one, must agree); the lists and the disk
differ in case for some names (e.g. HandstandPushups / HandStandPushups), which files.py resolves.
"""

import logging

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import AnnotationError, class_names_from, data_dir_of, open_annotation, read_class_index
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.logging import log_once

logger = logging.getLogger(__name__)

VIDEOS = "UCF-101"
LISTS = "ucfTrainTestlist"


def read_class_ind(path: str) -> dict[str, int]:
    """classInd.txt: `k ClassName` lines with k = 1..101 -> {ClassName: k - 1}."""
    if not storage.isfile(path):
        raise AnnotationError(f"{path} does not exist (expected UCF101's ucfTrainTestlist/classInd.txt)")
    mapping = {}
    with open_annotation(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            idx, _, name = line.strip().partition(" ")
            if not idx.isdigit() or not name.strip():
                raise AnnotationError(f"{path}, line {lineno}: expected '<id> <ClassName>', got {line.strip()!r}")
            mapping[name.strip()] = int(idx) - 1
    class_names_from(mapping)  # ids 0..N-1 without gaps, or an error
    return mapping


def read_ucf_list(path: str, video_dir: str, mapping: dict[str, int]) -> tuple[list[str], list[int]]:
    if not storage.isfile(path):
        raise AnnotationError(f"{path} does not exist (expected UCF101's split lists in {LISTS}/)")
    lower = {name.lower(): i for name, i in mapping.items()}
    paths, labels = [], []
    with open_annotation(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}, line {lineno}"
            rel = fields[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            if folder.lower() not in lower:
                raise AnnotationError(
                    f"{where}: expected '<Class>/<video>.avi [id]' with a class of classInd.txt, got {line.strip()!r}"
                )
            label = lower[folder.lower()]
            if len(fields) > 1 and (not fields[1].isdigit() or int(fields[1]) - 1 != label):
                raise AnnotationError(
                    f"{where}: the id {fields[1]} does not match the class folder {folder!r} "
                    f"(id {label + 1} in classInd.txt)"
                )
            paths.append(storage.join(video_dir, *rel.split("/")))
            labels.append(label)
    if not paths:
        raise AnnotationError(f"{path} lists no videos")
    return paths, labels


@DATASET_REGISTRY.register_as("ucf101")
def build_ucf101(cfg, split: str, view: ViewSpec) -> VideoDataset:
    root = data_dir_of(cfg, f"that holds {VIDEOS}/ and {LISTS}/")
    lists = storage.join(root, LISTS)
    mapping = (
        read_class_index(cfg.DATA.CLASS_INDEX_FILE)
        if cfg.DATA.CLASS_INDEX_FILE
        else read_class_ind(storage.join(lists, "classInd.txt"))
    )
    n = cfg.DATA.SPLIT_ID
    name = f"trainlist0{n}.txt" if split == "train" else f"testlist0{n}.txt"
    if split != "train":
        log_once(logger, logging.INFO, f"UCF101 has no validation split: val and test both read {name}")
    paths, labels = read_ucf_list(
        storage.join(lists, name), cfg.DATA.PATH_PREFIX or storage.join(root, VIDEOS), mapping
    )
    return VideoDataset(cfg, split, view, paths, labels, class_names_from(mapping))
