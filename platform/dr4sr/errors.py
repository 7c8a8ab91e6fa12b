"""User-facing errors: one clear message naming the file, line or key; the CLI prints it without a traceback."""
from __future__ import annotations


class DR4SRError(Exception):
    """Base class for errors caused by user input (data, config, paths)."""


class DataFormatError(DR4SRError):
    def __init__(self, path: object, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


class ConfigError(DR4SRError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C (raised by the CLI's and a study's handlers)."""
