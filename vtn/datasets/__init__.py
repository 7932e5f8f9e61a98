"""Data: decoding, temporal sampling, spatial transforms, datasets (kinetics, mit, ucf101, hmdb51, ssv2, class
folders, the generated synthetic one) and loaders. Reading video files is vtn/video/."""

from vtn.datasets import (  # noqa: F401  (register datasets and checks)
    augment,
    features,
    folder,
    hmdb51,
    kinetics,
    mit,
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
    default_protocol,
    shuffle_dataset,
)
from vtn.video.decoder import DECODER_REGISTRY, VideoDecodeError, VideoInfo, build_decoder

__all__ = [
    "DATASET_REGISTRY",
    "DECODER_REGISTRY",
    "EpochSampler",
    "VideoDecodeError",
    "VideoInfo",
    "build_dataset",
    "build_decoder",
    "build_loader",
    "check_splits",
    "default_protocol",
    "shuffle_dataset",
]
