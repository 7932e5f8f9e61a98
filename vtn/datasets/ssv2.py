"""Something-Something v2 as its archives unpack, side by side in DATA.PATH_TO_DATA_DIR:

    labels/labels.json                     {"Approaching something with your camera": "0", ...}
    labels/train.json, validation.json     [{"id": "78687", "template": "Holding [something] next to [something]", ...}]
    labels/test.json                       [{"id": "1420"}]  (no labels)
    20bn-something-something-v2/<id>.webm  the videos (DATA.PATH_PREFIX replaces this folder when set)

An item's class is its template with the placeholder brackets removed, looked up in labels.json. The test
labels are not public: the test split reads validation.json. The classes tell left from right and before from
after, so training clips are not flipped unless DATA.RANDOM_FLIP is True.
"""

import json
import logging
import os

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import AnnotationError, class_names_from, data_dir_of, open_annotation, read_class_index
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.logging import log_once

logger = logging.getLogger(__name__)

LABELS = "labels"
VIDEOS = "20bn-something-something-v2"
FILES = {"train": "train.json", "val": "validation.json", "test": "validation.json"}


def read_json(path: str, what: str):
    if not storage.isfile(path):
        raise AnnotationError(f"{path} does not exist (expected Something-Something v2's {what})")
    with open_annotation(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}: not valid JSON ({e})") from e


def read_labels(path: str) -> dict[str, int]:
    """labels.json: {class name: id as a string or an integer}."""
    raw = read_json(path, "labels/labels.json")
    if not isinstance(raw, dict) or not all(str(v).strip().isdigit() for v in raw.values()):
        raise AnnotationError(f"{path}: expected a JSON object {{class name: id}}")
    mapping = {str(k): int(v) for k, v in raw.items()}
    class_names_from(mapping)
    return mapping


def class_of(template: str) -> str:
    return template.replace("[", "").replace("]", "").strip()


def read_items(path: str, video_dir: str, mapping: dict[str, int]) -> tuple[list[str], list[int]]:
    items = read_json(path, os.path.join(LABELS, os.path.basename(path)))
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{id, template, ...}} items")
    lower = {name.lower(): i for name, i in mapping.items()}
    paths, labels = [], []
    for i, item in enumerate(items):
        where = f"{path}, item {i}"
        if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("template"), str):
            raise AnnotationError(f"{where}: expected an object with 'id' and 'template', got {str(item)[:120]}")
        name = class_of(item["template"])
        label = mapping.get(name, lower.get(name.lower()))
        if label is None:
            raise AnnotationError(f"{where}: the template {item['template']!r} is not a class of labels.json")
        paths.append(storage.join(video_dir, f"{item['id']}.webm"))
        labels.append(label)
    if not paths:
        raise AnnotationError(f"{path} lists no videos")
    return paths, labels


@DATASET_REGISTRY.register_as("ssv2")
def build_ssv2(cfg, split: str, view: ViewSpec) -> VideoDataset:
    root = data_dir_of(cfg, f"with {LABELS}/ and {VIDEOS}/")
    labels_dir = storage.join(root, LABELS)
    if cfg.DATA.CLASS_INDEX_FILE:
        mapping = read_class_index(cfg.DATA.CLASS_INDEX_FILE)
    else:
        mapping = read_labels(storage.join(labels_dir, "labels.json"))
    if split == "test":
        log_once(
            logger, logging.INFO, "Something-Something v2's test labels are not public: testing on validation.json"
        )
    video_dir = cfg.DATA.PATH_PREFIX or storage.join(root, VIDEOS)
    paths, labels = read_items(storage.join(labels_dir, FILES[split]), video_dir, mapping)
    dataset = VideoDataset(cfg, split, view, paths, labels, class_names_from(mapping))
    dataset.default_flip = False
    return dataset
