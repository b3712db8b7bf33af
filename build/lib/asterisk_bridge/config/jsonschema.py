"""JSON Schema of the config file, for editors (`numcfg schema`)."""

from __future__ import annotations

from typing import Any

from .schema import Config


def config_json_schema() -> dict[str, Any]:
    # mode="validation": what a file may contain (defaults included), not what we dump.
    schema = Config.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
