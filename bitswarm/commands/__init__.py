"""One module per subcommand. Each defines ``register(subparsers)``; the CLI finds them itself,
so adding a command never edits a shared file."""
