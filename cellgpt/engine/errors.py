"""Error types of the cell engine. Every error names the cell (and where possible the span of
the formula text) at fault, so a user can find and fix it."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for everything the engine raises on purpose."""


class FormulaError(EngineError):
    """A formula that cannot be accepted: bad syntax or a construct outside the language.

    `span` is (start, end) character offsets into the formula text, when known."""

    def __init__(
        self, message: str, *, cell: str | None = None, span: tuple[int, int] | None = None
    ) -> None:
        self.message = message
        self.cell = cell
        self.span = span
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"cell {self.cell!r}: " if self.cell else ""
        return f"{where}{self.message}"

    def with_cell(self, cell: str) -> FormulaError:
        return type(self)(self.message, cell=cell, span=self.span)


class FormulaSyntaxError(FormulaError):
    """The text does not parse as an expression."""


class ForbiddenConstructError(FormulaError):
    """The expression uses something the formula language refuses (dunder, lambda, ...)."""


class DefinitionError(EngineError):
    """A change to the sheet's structure was refused (unknown name, duplicate, cycle, ...).
    Raised before anything is modified, so valid cells are never disturbed."""


class UnknownNameError(DefinitionError):
    pass


class DuplicateNameError(DefinitionError):
    pass


class CycleError(DefinitionError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("cycle: " + " -> ".join(cycle))


class CellEvalError(EngineError):
    """Raised inside formula evaluation; carries the span of the failing sub-expression."""

    def __init__(self, message: str, span: tuple[int, int] | None = None) -> None:
        self.message = message
        self.span = span
        super().__init__(message)


class LimitError(CellEvalError):
    """A formula asked for more than the engine allows (allocation bombs, huge powers)."""


class RunCancelled(EngineError):
    """A run stopped early because its cancel callback said so."""


class CellError(EngineError):
    """Raised by `Workbook.run`/`wb[name]` when the requested cell ends in error or blocked."""

    def __init__(self, name: str, info: ErrorInfo) -> None:
        self.name = name
        self.info = info
        super().__init__(f"cell {name!r}: {info}")


class ErrorInfo:
    """What went wrong in one cell: kind ('eval', 'blocked', ...), message, formula span."""

    __slots__ = ("blocked_by", "kind", "message", "span")

    def __init__(
        self,
        kind: str,
        message: str,
        span: tuple[int, int] | None = None,
        blocked_by: str | None = None,
    ) -> None:
        self.kind = kind
        self.message = message
        self.span = span
        self.blocked_by = blocked_by

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ErrorInfo({self.kind!r}, {self.message!r})"
