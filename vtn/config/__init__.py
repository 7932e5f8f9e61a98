"""Configuration: the YACS defaults tree, loading with `_BASE_` and overrides, validation, the batch plan, and
what a view of a video is (`ViewSpec`, parsed once from the config)."""

from vtn.config.batch_plan import BatchPlan, batch_plan, check_world, eval_batch_per_process
from vtn.config.defaults import SPLITS, get_cfg
from vtn.config.loading import dump_config, load_config, overrides_to_dict
from vtn.config.validation import register_check, register_choices, validate_config, world_size
from vtn.config.views import ViewSpec, as_view, default_view, passes_of, view_spec, views_to_test
from vtn.utils.errors import ConfigError

__all__ = [
    "BatchPlan",
    "SPLITS",
    "batch_plan",
    "check_world",
    "eval_batch_per_process",
    "get_cfg",
    "load_config",
    "dump_config",
    "overrides_to_dict",
    "validate_config",
    "register_check",
    "register_choices",
    "world_size",
    "ConfigError",
    "ViewSpec",
    "as_view",
    "default_view",
    "views_to_test",
    "passes_of",
    "view_spec",
]
