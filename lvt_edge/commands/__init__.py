"""CLI verbs: one module per verb with `register(parser)` and `run(args) -> int`."""
