"""Configuration: the YACS defaults tree, loading with `_BASE_` and overrides, validation."""

from vtn.config.defaults import get_cfg
from vtn.config.loading import ConfigError, dump_config, load_config, overrides_to_dict
from vtn.config.validation import validate_config, world_size

__all__ = ["get_cfg", "load_config", "dump_config", "overrides_to_dict", "validate_config", "world_size", "ConfigError"]
