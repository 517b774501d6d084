"""One module per ``deepres`` subcommand, each with ``add_args(parser)`` and ``main(args) -> int``.

The module docstring is the subcommand's help text.
"""
