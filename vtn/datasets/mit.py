"""Moments in Time v2 in its official release layout, DATA.PATH_TO_DATA_DIR =

    Moments_in_Time_Raw/
        trainingSet.csv        filename,label,positive responses,negative responses
        validationSet.csv
        moments_categories.txt label,index (one class per line)
        training/<label>/<video>.mp4
        validation/<label>/<video>.mp4

The train split reads trainingSet.csv; val and test read validationSet.csv (the test labels are not public).
"""

import csv

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import (
    AnnotationError,
    class_names_from,
    data_dir_of,
    open_annotation,
    parse_label,
    read_class_index,
)
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.video_dataset import VideoDataset

SPLITS = {
    "train": ("trainingSet.csv", "training"),
    "val": ("validationSet.csv", "validation"),
    "test": ("validationSet.csv", "validation"),
}
CATEGORIES = "moments_categories.txt"
# What a training run that starts from scratch is told (the trainer logs it as a warning).
INIT_ADVICE = (
    "the paper initialises Moments in Time models from a Kinetics-400 VTN, and TRAIN.CHECKPOINT_FILE_PATH "
    "is empty: this run starts from the ImageNet backbone alone (Table 5 is not reproduced this way). Set "
    "TRAIN.CHECKPOINT_FILE_PATH to a Kinetics-400 checkpoint, e.g. of configs/Kinetics/VIT_B_VTN.yaml"
)


def read_mit_csv(path: str, video_dir: str, mapping):
    if not storage.isfile(path):
        raise AnnotationError(f"annotation file {path} does not exist (expected the MiT v2 release layout)")
    paths, labels = [], []
    with open_annotation(path) as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            where = f"{path}, line {lineno}"
            if len(row) < 2:
                raise AnnotationError(f"{where}: expected 'filename,label[,positive,negative]', got {row}")
            if lineno == 1 and row[0].strip().lower() == "filename":
                continue  # a header line
            paths.append(storage.join(video_dir, row[0].strip()))
            labels.append(parse_label(row[1], mapping, where))
    if not paths:
        raise AnnotationError(f"annotation file {path} lists no videos")
    return paths, labels


@DATASET_REGISTRY.register_as("mit")
def build_mit(cfg, split: str, view: ViewSpec) -> VideoDataset:
    root = data_dir_of(cfg, "of Moments in Time (Moments_in_Time_Raw)")
    csv_name, folder = SPLITS[split]
    categories = cfg.DATA.CLASS_INDEX_FILE or storage.join(root, CATEGORIES)
    mapping = read_class_index(categories)
    video_dir = cfg.DATA.PATH_PREFIX or storage.join(root, folder)
    paths, labels = read_mit_csv(storage.join(root, csv_name), video_dir, mapping)
    dataset = VideoDataset(cfg, split, view, paths, labels, class_names_from(mapping))
    dataset.init_advice = INIT_ADVICE
    return dataset
