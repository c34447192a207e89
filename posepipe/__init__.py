"""posepipe application layer: settings, the CLI and the commands that tie the stages together."""

__version__ = "0.1.0"
