"""The one exception type the CLI turns into a single line and exit code 1."""


class InputError(ValueError):
    """Bad user input: a config, a file, a value. The message names the problem."""
