"""One module per ``tinycnn`` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``."""
