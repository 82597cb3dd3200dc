"""The generic spreadsheet runtime: named formula cells, a dependency graph, lazy
recalculation, pins, per-cell errors, block templates and workbook files. It knows nothing
about GPT-2, Textual or Excel."""

from cellgpt.engine.errors import (
    CellError,
    CycleError,
    DefinitionError,
    DuplicateNameError,
    EngineError,
    ErrorInfo,
    FormulaError,
    RunCancelled,
    UnknownNameError,
)
from cellgpt.engine.functions import FunctionLibrary, core
from cellgpt.engine.loader import load_workbook
from cellgpt.engine.row_derive import derive_row_extenders
from cellgpt.engine.store import Status
from cellgpt.engine.workbook import CellInfo, CellSpec, Template, Workbook
from cellgpt.engine.workbook_file import WorkbookFileError
from cellgpt.engine.workbook_save import save_workbook

__all__ = [
    "CellError",
    "CellInfo",
    "CellSpec",
    "CycleError",
    "DefinitionError",
    "DuplicateNameError",
    "EngineError",
    "ErrorInfo",
    "FormulaError",
    "FunctionLibrary",
    "RunCancelled",
    "Status",
    "Template",
    "UnknownNameError",
    "Workbook",
    "WorkbookFileError",
    "core",
    "derive_row_extenders",
    "load_workbook",
    "save_workbook",
]
