"""Subcommands of the ``inkhue`` command line (see inkhue_engine.cli)."""
