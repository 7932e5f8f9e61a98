"""Data: decoding, temporal sampling, spatial transforms, datasets (kinetics, mit, ucf101, hmdb51, ssv2, class
folders, the generated synthetic one, the feature cache) and loaders. Every dataset keeps the contract of
`ViewDataset` (contract.py) and is read with a view (vtn.config.ViewSpec). Reading video files is vtn/video/."""

from vtn.datasets import (  # noqa: F401  (register datasets and checks)
    augment,
    features,
    folder,
    hmdb51,
    kinetics,
    mit,
    shards,
    ssv2,
    synthetic,
    ucf101,
)
from vtn.datasets.build import (
    DATASET_REGISTRY,
    EpochSampler,
    build_dataset,
    build_loader,
    check_splits,
    loader_state,
    restore_loader_state,
    shuffle_dataset,
)
from vtn.datasets.contract import ViewDataset
from vtn.video.decoder import DECODER_REGISTRY, VideoDecodeError, VideoInfo, build_decoder

__all__ = [
    "DATASET_REGISTRY",
    "DECODER_REGISTRY",
    "EpochSampler",
    "VideoDecodeError",
    "VideoInfo",
    "ViewDataset",
    "build_dataset",
    "build_decoder",
    "build_loader",
    "check_splits",
    "loader_state",
    "restore_loader_state",
    "shuffle_dataset",
]
