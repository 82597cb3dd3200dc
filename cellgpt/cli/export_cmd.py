"""`cellgpt export OUT.xlsx [PROMPT]`: the workbook as an Excel file (values or live formulas)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cellgpt.cli import UserError
from cellgpt.cli.cell_names import no_match_message, unmatched
from cellgpt.cli.common import check_prompt_length, model_args, open_workbook
from cellgpt.cli.output import check_target, files_read
from cellgpt.cli.progress import Progress
from cellgpt.export.capacity import DEFAULT_CAPACITY


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write the workbook to .xlsx: values, or formulas that Excel/LibreOffice recompute",
    )
    p.add_argument("out", help="the .xlsx file to write")
    model_args(p, prompt="optional")
    p.add_argument(
        "--mode",
        choices=["values", "formulas"],
        default="values",
        help="values: every cell's numbers; formulas: Excel array formulas from the embedding on",
    )
    p.add_argument(
        "--with-params",
        action="store_true",
        help="values mode: add the parameter tables (GPT-2 small: ~124M numbers, ~1 GB)",
    )
    p.add_argument(
        "--cells",
        nargs="+",
        metavar="PATTERN",
        help="only these cells (names or aliases, wildcards allowed: 'h0.*' logits)",
    )
    p.add_argument(
        "--capacity",
        type=int,
        default=DEFAULT_CAPACITY,
        metavar="N",
        help="formulas mode: N token rows on every sheet; the prompt fills n_tokens of them "
        "and more ids can be typed into token_ids (default 16)",
    )
    p.add_argument(
        "--on-demand",
        action="store_true",
        help="formulas mode: on-demand cells (logits_all: a score per token and vocabulary "
        "entry, the costliest recalculation) as formulas too; by default their values",
    )
    p.add_argument(
        "--excel365",
        action="store_true",
        help="formulas mode: the workbook's function cells become LAMBDA names that formulas "
        "call (Excel 365 only; by default calls are spelled out, which LibreOffice recomputes)",
    )
    p.add_argument(
        "--layout",
        choices=["arrays", "cells"],
        default="arrays",
        help="formulas mode: arrays, one array formula per block (any size); cells, an "
        "ordinary formula in every cell to click and read (small models only)",
    )
    p.add_argument(
        "--parts",
        metavar="K|RANGES",
        help="formulas mode: split GPT-2 into K workbooks of consecutive blocks (OUT.part1ofK"
        ".xlsx, ...; each later part starts from cellgpt's values of the residual stream), "
        "or give the blocks: 0-3,4-7,8-11",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from cellgpt.export.xlsx import export_workbook

    if not args.out.lower().endswith(".xlsx"):
        raise UserError(f"the output file must end in .xlsx: {args.out}")
    if args.with_params and args.mode == "formulas":
        print("cellgpt: formulas mode always includes the parameters", file=sys.stderr)
    if args.excel365 and args.mode != "formulas":
        raise UserError("--excel365 needs --mode formulas (it changes how formulas are written)")
    if args.layout == "cells" and (args.mode != "formulas" or args.excel365):
        raise UserError("--layout cells needs --mode formulas (and not --excel365)")
    wb = open_workbook(args)
    if args.prompt is not None:
        check_prompt_length(wb)
    for pattern in unmatched(wb, args.cells or []):  # a typo must not shrink the export quietly
        raise UserError(f"--cells: {no_match_message(wb, pattern)}")
    check_target(args.out, files_read(args, wb))
    if args.parts is not None:
        return _export_parts(args, wb)
    bar = None if args.quiet else Progress("export", unit="numbers")
    try:
        report = export_workbook(
            wb,
            args.out,
            mode=args.mode,
            with_params=args.with_params,
            cells=args.cells,
            progress=bar,
            capacity=args.capacity if args.mode == "formulas" else None,
            on_demand=args.on_demand,
            excel365=args.excel365,
            layout=args.layout,
        )
    except ValueError as exc:  # e.g. no cell matches the patterns
        raise UserError(str(exc)) from None
    except OSError as exc:
        # strerror/filename, not str(exc): the exception may name the hidden temp file.
        where = (
            f" ({exc.filename})"
            if exc.filename and exc.filename == str(Path(args.out).parent)
            else ""
        )
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}{where}") from None
    finally:
        if bar is not None:
            bar.close()
    as_values = [e.name for e in report.plan.entries if e.note.startswith("no Excel form")]
    print(
        f"wrote {report.path} ({report.mode}): {report.sheets} sheets, "
        f"{report.formulas} formula cells, {report.numbers:,} numbers, "
        f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s"
    )
    if args.mode == "formulas" and as_values:
        shown = ", ".join(as_values[:8]) + (" …" if len(as_values) > 8 else "")
        print(f"as values (no Excel form; listed in the Index): {shown}")
    on_demand = [e.name for e in report.plan.entries if e.note.startswith("on demand")]
    if on_demand:
        print(f"as values (on demand; --on-demand for formulas): {', '.join(on_demand)}")
    return 0


def _export_parts(args: argparse.Namespace, wb: object) -> int:
    """`--parts`: the formulas export as several workbooks (cellgpt/export/parts.py)."""
    from cellgpt.export.split import export_parts

    if args.mode != "formulas" or args.cells:
        raise UserError("--parts needs --mode formulas and no --cells")
    if args.layout == "cells":  # parts are for models too big for one workbook
        raise UserError("--parts writes the arrays layout: leave out --layout cells")
    try:
        reports = export_parts(
            wb,  # type: ignore[arg-type]
            Path(args.out),
            args.parts,
            capacity=args.capacity,
            on_demand=args.on_demand,
            excel365=args.excel365,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    for report in reports:
        part = report.plan.part
        print(
            f"wrote {report.path} ({part.title()}): {report.sheets} sheets, "
            f"{report.formulas} formula cells, {report.numbers:,} numbers, "
            f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s"
        )
    return 0
