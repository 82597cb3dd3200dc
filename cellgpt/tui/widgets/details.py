"""The details pane: a cell's formula (error span underlined), status, shape and stats, its
explanation, and the cells it reads and is read by — a list you can dive into with Enter."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from cellgpt.engine import CellInfo, Status
from cellgpt.tui.numfmt import format_duration
from cellgpt.tui.widgets.cell_tree import mark

REFS_TITLE = Text.assemble(
    ("← reads", "green"), ("  │  ", "dim"), ("→ read by", "cyan"), ("   Enter opens", "dim")
)


def formula_text(formula: str, span: tuple[int, int] | None = None) -> Text:
    """The formula, with the part at fault (if any) underlined in red."""
    text = Text(formula, style="bold")
    if span is not None:
        start, end = max(0, span[0]), min(len(formula), max(span[1], span[0] + 1))
        text.stylize("underline bold red", start, end)
    return text


def describe(
    info: CellInfo,
    aliases: list[str],
    stats: str,
    note: str = "",
    *,
    timings: bool = True,
    original: str | None = None,
) -> Text:
    """Everything about one cell except its references, as rich text; an edited formula is
    shown with the `original` it replaced."""
    status = Status.PINNED if info.pinned else info.status
    out = Text.assemble((info.name, "bold"), "  ", mark(status), f" {status}")
    if timings and format_duration(info.duration):
        out.append(f"  {format_duration(info.duration)}", style="dim")
    out.append(f"  runs {info.runs}", style="dim")
    title = info.hints.get("title")
    if isinstance(title, str) and title:
        out.append(f"\n{title}", style="bold italic")  # the original spreadsheet's section
    if aliases:
        out.append("\nalso: " + ", ".join(aliases), style="dim")
    # An error belongs to the run that raised it: once the formula (or an input) changed the
    # cell is stale and the old message would only mislead.
    error = info.error if info.status in (Status.ERROR, Status.BLOCKED) else None
    if info.formula is None:
        out.append("\n= (a value set from Python)", style="italic")
    else:
        out.append("\n= ")
        out.append_text(formula_text(info.formula, error.span if error is not None else None))
    if original is not None and original != info.formula:
        out.append("\n✎ edited, was: ", style="yellow")
        out.append(original, style="italic")
        what = "template's" if info.template is not None else "original"
        out.append(f"  (u undoes, U back to the {what})", style="dim")
    elif info.overridden:
        out.append("\n✎ edited: differs from its block template", style="yellow")
    if info.pinned:
        out.append("\nP pinned: the value is fixed; P again unpins", style="blue")
    elif info.hints.get("evict"):
        out.append("\nevictable: dropped after use to save memory, recomputed on view", "dim")
    if error is not None:
        style = "magenta" if info.status == Status.BLOCKED else "bold red"
        out.append(f"\n{error.message}", style=style)
    if info.shape is not None:
        shape = " × ".join(str(d) for d in info.shape) if info.shape else "scalar"
        out.append(f"\nshape {shape}  {info.dtype or ''}", style="cyan")
    elif info.dtype is not None:
        out.append(f"\ntype {info.dtype}", style="cyan")
    if stats:
        out.append(f"\n{stats}", style="cyan")
    if note:
        out.append(f"\n{note}", style="dim italic")
    if info.doc:
        out.append("\n\n" + info.doc.strip())
    return out


def called_function_cells(wb: Any, name: str) -> list[str]:
    """The workbook's function cells that a cell's formula calls directly."""
    formula = wb.cell(name).formula
    own = set(wb.functions()) if hasattr(wb, "functions") else set()
    return [f for f in formula.functions if f in own] if formula is not None else []


class DetailsPane(Vertical):
    """Shows one cell. The references list posts `OptionList.OptionSelected` with the option
    id `ref:<cell name>`."""

    def __init__(self, *, id: str | None = None, show_timings: bool = True) -> None:
        super().__init__(id=id)
        self.show_timings = show_timings

    def compose(self) -> ComposeResult:
        yield Static(id="details-text")
        yield Static(REFS_TITLE, id="refs-title")
        yield OptionList(id="refs")

    def show(
        self,
        wb: Any,
        name: str,
        stats: str = "",
        note: str = "",
        *,
        same_cell: bool = False,
        original: str | None = None,
    ) -> None:
        """Show a cell; `same_cell` keeps the highlighted reference (a status refresh)."""
        info = wb.info(name)
        aliases = sorted(wb.aliases(name))
        text = describe(info, aliases, stats, note, timings=self.show_timings, original=original)
        self.query_one("#details-text", Static).update(text)
        refs = self.query_one("#refs", OptionList)
        options: list[Option | None] = []
        current = info.status == Status.BLOCKED and info.error is not None
        blocker = info.error.blocked_by if current and info.error is not None else None
        if blocker:
            options.append(
                Option(Text(f"⊘ {blocker}  (the cell at fault)", "magenta"), f"ref:{blocker}")
            )
        for ref in info.precedents:
            options.append(Option(Text.assemble(("← ", "green"), ref), f"ref:{ref}"))
        for fn in called_function_cells(wb, name):  # Enter shows the function
            options.append(Option(Text.assemble(("ƒ ", "magenta"), fn), f"ref:fn:{fn}"))
        if info.precedents and info.dependents:
            options.append(None)
        for dep in info.dependents:
            options.append(Option(Text.assemble(("→ ", "cyan"), dep), f"ref:{dep}"))
        if not options:
            options.append(Option(Text("(no references)", "dim"), disabled=True))
        highlighted = refs.highlighted if same_cell else None
        refs.set_options(options)
        if highlighted is None or highlighted >= refs.option_count:
            # Start on the first reference, so Enter dives straight away.
            enabled = [i for i, o in enumerate(options) if o is not None and not o.disabled]
            highlighted = enabled[0] if enabled else None
        refs.highlighted = highlighted

    def show_text(self, text: Text, dependents: list[str]) -> None:
        """Something that is not a cell (a function cell) and the cells that read it."""
        self.query_one("#details-text", Static).update(text)
        refs = self.query_one("#refs", OptionList)
        options = [Option(Text.assemble(("→ ", "cyan"), d), f"ref:{d}") for d in dependents]
        refs.set_options(options or [Option(Text("(no references)", "dim"), disabled=True)])
        refs.highlighted = 0 if options else None

    def clear(self, message: str = "") -> None:
        self.query_one("#details-text", Static).update(message)
        self.query_one("#refs", OptionList).clear_options()
