"""What every `numcfg` subcommand module shares: the -c option and loading its config.

Its own module so cli.py can import the subcommand modules (cli_admin, cli_crm,
cli_holdmusic) at the top while they import these helpers, without a cycle.
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import Config, ConfigError, load_config


def default_config_path() -> str:
    return os.environ.get("NUMCFG_CONFIG") or "numcfg.yaml"


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        help="config file (default: $NUMCFG_CONFIG, else ./numcfg.yaml)",
    )


def load_config_or_exit(args: argparse.Namespace) -> Config:
    """The config named by -c; on errors print them and exit 1."""
    path = args.config or default_config_path()
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(1) from None
    except FileNotFoundError:
        print(f"{path}: no such file", file=sys.stderr)
        raise SystemExit(1) from None
