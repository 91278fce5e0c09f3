"""CLI commands, one module per study (see nnrds.cli.COMMAND_MODULES)."""
