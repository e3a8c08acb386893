"""Console commands: each module parses arguments and calls the library; nothing imports this package."""
