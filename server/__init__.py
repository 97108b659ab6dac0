"""server/: the pygls language server, the CLI, and the tooling that goes through them."""
