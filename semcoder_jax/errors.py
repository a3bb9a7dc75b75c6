"""User-facing errors: the CLI prints them as one line and exits 2, without a traceback."""


class SemcoderError(Exception):
    """Bad input or config; the message names the file, line, tensor or key at fault."""
