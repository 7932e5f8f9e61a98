import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vtn.launch.cli import register_components  # noqa: E402

register_components()  # as in the tools: every package registers its config checks


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A tiny synthetic dataset (real mpeg4 files), generated once per test session."""
    from tests.helpers import TINY_SYNTHETIC
    from vtn.datasets.synthetic import SyntheticSpec, make_synthetic_dataset

    out = str(tmp_path_factory.mktemp("data") / "synthetic")
    make_synthetic_dataset(out, SyntheticSpec(**TINY_SYNTHETIC))
    return out
