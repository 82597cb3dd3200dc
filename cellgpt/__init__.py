"""cellgpt: GPT-2 as a living spreadsheet."""

__version__ = "0.1.0"
