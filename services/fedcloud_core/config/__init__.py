"""The appliance config: typed model, loader and sample generator."""

from .loader import CONFIG_ENV, DEFAULT_CONFIG_PATH, config_path, load_config, parse_config
from .model import AppConfig
from .sample import render_sample

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "AppConfig",
    "config_path",
    "load_config",
    "parse_config",
    "render_sample",
]
