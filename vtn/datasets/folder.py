"""A dataset of class folders, DATA.PATH_TO_DATA_DIR =

    train/<class>/<video>     any depth below the class folder; files that are not videos are ignored
    val/<class>/<video>
    test/<class>/<video>      optional: without it the test split reads val/

Class ids are the class folder names of train/ sorted, unless DATA.CLASS_INDEX_FILE gives them; val/ and
test/ may lack a class, not have one that train/ has not. DATA.PATH_TO_DATA_DIR may be an s3:// prefix (each
split's folder is listed by one walk of it); an http(s) folder cannot be listed.
"""

import logging

from vtn import storage
from vtn.config.views import ViewSpec
from vtn.datasets.annotations import class_names_from, data_dir_of, in_data_dir, read_class_index
from vtn.datasets.build import DATASET_REGISTRY
from vtn.datasets.files import class_folders, videos_of_class_folders
from vtn.datasets.video_dataset import VideoDataset
from vtn.utils.errors import DatasetError
from vtn.utils.logging import log_once

logger = logging.getLogger(__name__)


def folder_classes(cfg) -> list[str]:
    if cfg.DATA.CLASS_INDEX_FILE:
        path = in_data_dir(cfg.DATA.CLASS_INDEX_FILE, cfg.DATA.PATH_TO_DATA_DIR)
        return class_names_from(read_class_index(path))
    return class_folders(storage.join(cfg.DATA.PATH_TO_DATA_DIR, "train"))


@DATASET_REGISTRY.register_as("folder")
def build_folder(cfg, split: str, view: ViewSpec) -> VideoDataset:
    root = data_dir_of(cfg, "with train/<class>/ and val/<class>/")
    folder = split
    if split == "test" and not storage.isdir(storage.join(root, "test")):
        log_once(
            logger,
            logging.INFO,
            f"{storage.join(root, 'test')} does not exist: testing on {storage.join(root, 'val')}",
        )
        folder = "val"
    classes = folder_classes(cfg)
    split_dir = storage.join(root, folder)
    paths, labels, ignored = videos_of_class_folders(split_dir, classes)
    if not paths:
        raise DatasetError(f"{split_dir} holds no video files (by extension) in its class folders")
    if ignored:
        log_once(logger, logging.INFO, f"{split_dir}: {ignored} files that are not videos are ignored")
    return VideoDataset(cfg, split, view, paths, labels, classes, ignored_files=ignored, located=True)
