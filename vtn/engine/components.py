"""Every name a config can choose, registered: import the packages whose modules register them.

Registries fill when their modules are imported. A config is validated against them (VTN.BACKBONE,
TRAIN.DATASET, SOLVER.LR_POLICY, ...), so the tools, the Python API and the tests call `register_components()`
before they load a config. It imports nothing at module level: `tools/*.py --help` stays free of torch.
"""

import importlib

# the packages and modules whose import registers names and config checks
COMPONENT_MODULES = (
    "vtn.datasets",  # datasets, the RandAugment check; vtn.video's decoders
    "vtn.models",  # model, backbone, encoder, head and position-embedding names
    "vtn.engine.hooks",
    "vtn.engine.losses",
    "vtn.engine.lr_policy",
    "vtn.engine.optimizer",
)


def register_components() -> None:
    """Import every module of COMPONENT_MODULES (each once; later calls cost nothing)."""
    for name in COMPONENT_MODULES:
        importlib.import_module(name)
