"""The numcfg configuration file: schema, loader with positions, checks, reload."""

from .dialplan import render_dialplan
from .errors import ConfigError, ConfigIssue
from .holder import ConfigHolder
from .jsonschema import config_json_schema
from .loader import load_config, load_config_text
from .schema import Config

__all__ = [
    "Config",
    "ConfigError",
    "ConfigHolder",
    "ConfigIssue",
    "config_json_schema",
    "load_config",
    "load_config_text",
    "render_dialplan",
]
