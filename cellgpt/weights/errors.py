"""The one exception type for bad parameter folders, tables, configs and checkpoints."""


class ParamsError(ValueError):
    """Invalid model parameters; the message names the file (and row/column) at fault."""
