"""The config of a dataset test: the tests' small clip settings, a dataset and its data folder."""

from tests.helpers import synthetic_opts
from vtn.config import load_config


def layout_cfg(dataset: str, root, num_classes: int, *opts):
    return load_config(
        None,
        synthetic_opts(str(root))
        + ["TRAIN.DATASET", dataset, "TEST.DATASET", dataset, "MODEL.NUM_CLASSES", num_classes, *opts],
    )
