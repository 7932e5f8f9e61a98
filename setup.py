#!/usr/bin/env python
"""Install vtn: `pip install -e .` (add `.[test]` for the test tools)."""

from setuptools import find_packages, setup

setup(
    name="vtn",
    version="0.1.0",
    description="Video Transformer Network: a 2D backbone per frame, a Longformer over time, an MLP head",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "benchmarks", "configs")),
    install_requires=[
        # pip resolves these to the locally cached torch 2.14.1 / torchvision 0.29.1 where a constraint
        # file caps them (see INSTALL.md); elsewhere install the torch build that matches your CUDA first.
        "torch>=2.1",
        "torchvision>=0.16",
        "timm>=1.0",
        "transformers>=4.40",
        "fvcore",
        "iopath",
        "av>=12",
        "simplejson",
        "tensorboard",
        "numpy",
        "pyyaml",
        "matplotlib",
        "pillow",
        # object storage (s3:// paths and shards; endpoint and credentials from the standard AWS settings)
        "boto3",
        "requests",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-xdist",
            "submitit",
            "ruff>=0.6",
            "onnx",
            "onnxruntime",
            # a local S3-compatible server for the object-storage tests; the WebDataset reader the shards must suit
            "moto[server]",
            "webdataset",
        ],
        "dev": ["pytest>=7", "pytest-xdist", "ruff>=0.6"],
        "slurm": ["submitit"],
        "onnx": ["onnx", "onnxruntime"],
    },
)
