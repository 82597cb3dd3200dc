"""The Excel form of each library function, registered onto the function library.

An Excel form is `form(args, kwargs, result) -> list[Piece]`: given the translated arguments
(`XArr`: value + Excel pieces) and the engine's result value, it returns Excel expressions
tiling the result's logical 2-D view, or raises NoExcelForm. A function registered with
`excel=...` uses its own form; `with_excel_forms(library)` fills in the forms below for the
core and GPT-2 functions, so new functions export without special cases in the exporter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from cellgpt.engine import FunctionLibrary
from cellgpt.export import capacity, helpers
from cellgpt.export.layout import logical_shape
from cellgpt.export.xlarray import NoExcelForm, Piece, XArr
from cellgpt.export.xlexpr import (
    MASKED,
    Agg,
    Index0,
    Lit,
    Ref,
    RowPick,
    Transpose,
    XlExpr,
    fn,
    mmult,
    num,
    op,
    row_of,
    row_sums,
    transpose,
)

Form = Callable[[list[XArr], dict[str, XArr], Any], list[Piece]]


# ---------------------------------------------------------------- element-wise with broadcasting
def _tiles(args: list[XArr], shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """Rectangles to compute the result in: the finest tiling among the full-size arguments."""
    full = [a for a in args if a.pieces and a.shape == shape]
    best = max(full, key=lambda a: len(a.pieces), default=None)
    if best is None:
        rows, cols = logical_shape(shape)
        return [(0, 0, rows, cols)]
    return [p.rect for p in best.pieces]


def _operand(arg: XArr, shape: tuple[int, ...], rect: tuple[int, int, int, int]) -> XlExpr:
    """The part of a (broadcast) argument that meets the result's rectangle."""
    r0, c0, nr, nc = rect
    if arg.shape == shape:
        return arg.slice(r0, c0, nr, nc)
    if arg.array.size == 1:
        return arg.slice(0, 0, 1, 1)
    if arg.array.ndim > 2 or np.broadcast_shapes(arg.shape, shape) != shape:
        raise NoExcelForm(f"cannot broadcast {arg.shape} to {shape} in Excel")
    ar, ac = logical_shape(arg.shape)
    rows, _ = logical_shape(shape)
    if ar == 1:
        rs = (0, 1)
    elif r0 % ar + nr <= ar and rows % ar == 0:
        rs = (r0 % ar, nr)
    else:
        raise NoExcelForm("broadcast across pieces")
    cs = (0, 1) if ac == 1 else (c0, nc)
    return arg.slice(rs[0], cs[0], rs[1], cs[1])


def combine(args: list[XArr], result: Any, build: Callable[..., XlExpr]) -> list[Piece]:
    """Apply `build` to matching rectangles of every argument (numpy broadcasting rules)."""
    shape = np.asarray(result).shape
    pieces = []
    for rect in _tiles(args, shape):
        x = build(*[_operand(a, shape, rect) for a in args])
        pieces.append(Piece(rect[0], rect[1], _fit(x, rect[2], rect[3])))
    return pieces


def _fit(x: XlExpr, rows: int, cols: int) -> XlExpr:
    x.rows, x.cols = rows, cols  # broadcasting made it the rectangle's size
    return x


def elementwise(build: Callable[..., XlExpr], n_args: int | None = None) -> Form:
    """A form for a function applied number by number (with broadcasting)."""

    def form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
        if kwargs or (n_args is not None and len(args) != n_args):
            raise NoExcelForm("unexpected arguments")
        return combine(args, result, build)

    return form


def excel_function(name: str) -> Form:
    """An element-wise Excel function of one argument: EXP, LN, SQRT, TANH, ABS, SIGN."""
    return elementwise(lambda x: fn(name, x), 1)


# ---------------------------------------------------------------- helpers
def _static(arg: XArr | None, default: Any = None) -> Any:
    return default if arg is None else arg.value


def _no_kwargs(kwargs: dict[str, XArr], *allowed: str) -> None:
    extra = set(kwargs) - set(allowed)
    if extra:
        raise NoExcelForm(f"keyword {sorted(extra)[0]!r} has no Excel form")


def _rowwise_tiles(x: XArr) -> list[Piece]:
    """x's pieces, which must each span whole rows (for row-wise reductions)."""
    cols = x.logical[1]
    if any(p.c0 != 0 or p.x.cols != cols for p in x.pieces):
        raise NoExcelForm("row-wise function on a matrix split by columns")
    return x.pieces


# LibreOffice copies each MMULT operand range into a matrix (~10 bytes a number) for the
# formula's whole evaluation: 400 MB for GPT-2's 50,257 × 768 wte in the logits. Beyond
# this many numbers, the right operand (a sheet range) is cut into column chunks, one array
# formula each (~35 MB at a time); smaller models keep one MMULT over the named table.
MMULT_CHUNK = 1 << 22


def _column_chunks(b: XlExpr) -> list[tuple[int, XlExpr]]:
    """b as (first column, column chunk) pairs: one chunk unless b is a big sheet range."""
    if b.rows * b.cols <= MMULT_CHUNK:
        return [(0, b)]
    step = max(1, MMULT_CHUNK // b.rows)
    if isinstance(b, Transpose) and isinstance(b.x, Ref) and b.x.origin is not None:
        ref = b.x
        return [
            (c0, transpose(ref.sub(c0, 0, min(step, b.cols - c0), b.rows)))
            for c0 in range(0, b.cols, step)
        ]
    if isinstance(b, Ref) and b.origin is not None:
        return [(c0, b.sub(0, c0, b.rows, min(step, b.cols - c0))) for c0 in range(0, b.cols, step)]
    return [(0, b)]


# ---------------------------------------------------------------- forms
def matmul_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    _no_kwargs(kwargs)
    a, b = args
    if a.array.ndim == 3 and b.array.ndim == 3 and a.shape[0] == b.shape[0]:
        rows = a.shape[1]
        return [Piece(i * rows, 0, mmult(a.block(i), b.block(i))) for i in range(a.shape[0])]
    if a.array.ndim in (1, 2) and b.array.ndim == 2:
        return [Piece(0, c0, mmult(a.whole(), part)) for c0, part in _column_chunks(b.whole())]
    if a.array.ndim == 2 and b.array.ndim == 1:  # (T, n) @ (n,) = (T,), a row in our view
        return [Piece(0, 0, transpose(mmult(a.whole(), transpose(b.whole()))))]
    raise NoExcelForm(f"matmul of shapes {a.shape} and {b.shape}")


def transpose_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    if len(args) != 1 or kwargs or args[0].array.ndim != 2:
        raise NoExcelForm("transpose of a non-matrix or with axes")
    return [Piece(0, 0, transpose(args[0].whole()))]


def softmax_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """EXP(x - row max) / row sum, with each row's max and sum of exps in helper columns:
    a row far below the rest of its block keeps its own scale (no 0/0)."""
    _no_kwargs(kwargs, "axis")
    axis = _static(kwargs.get("axis"), args[1].value if len(args) > 1 else -1)
    x = args[0]
    if axis not in (-1, x.array.ndim - 1):
        raise NoExcelForm("softmax along an axis other than the last")
    sink = helpers.active()
    max_slot, sum_slot = sink.column("row max"), sink.column("sum of exp")
    pieces = []
    for p in _rowwise_tiles(x):
        top = _per_row(sink, max_slot, p, lambda row: Agg("MAX", row))
        e = fn("EXP", op(p.x, "-", top))
        total = sink.put(sum_slot, p.r0, row_sums(e))
        pieces.append(Piece(p.r0, p.c0, op(e, "/", total)))
    return pieces


def _per_row(
    sink: helpers.HelperSink, slot: int, p: Piece, reduce: Callable[[XlExpr], XlExpr]
) -> XlExpr:
    """A reduction with no row-wise array form (MAX): one formula per row in a helper
    column; the column's range, to refer to."""
    if p.x.rows == 1:
        return sink.put(slot, p.r0, reduce(p.x))
    for k in range(p.x.rows):
        sink.put(slot, p.r0 + k, reduce(row_of(p.x, k)))
    return sink.put_ref(slot, p.r0, p.x.rows)


def _row_stats(p: Piece, n: int) -> tuple[XlExpr, XlExpr]:
    """Each row's mean and population variance, computed once in helper columns."""
    sink = helpers.active()
    mean_slot, var_slot = sink.column("row mean"), sink.column("row variance")
    mean = sink.put(mean_slot, p.r0, op(row_sums(p.x), "/", num(n)))
    var = sink.put(var_slot, p.r0, op(row_sums(op(op(p.x, "-", mean), "^", num(2))), "/", num(n)))
    return mean, var


def _normalized(p: Piece, n: int, eps: XlExpr) -> XlExpr:
    mean, var = _row_stats(p, n)
    return op(op(p.x, "-", mean), "/", fn("SQRT", op(var, "+", eps)))


def layer_norm_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """(x - mean) / sqrt(var + eps) * gain + bias; mean and variance in helper columns."""
    _no_kwargs(kwargs, "eps")
    x, gain, bias = args[:3]
    eps = _eps(args, kwargs, 3)
    n = x.logical[1]
    pieces = []
    for p in _rowwise_tiles(x):
        g = _operand(gain, x.shape, p.rect)
        b = _operand(bias, x.shape, p.rect)
        pieces.append(Piece(p.r0, p.c0, op(op(_normalized(p, n, eps), "*", g), "+", b)))
    return pieces


def _eps(args: list[XArr], kwargs: dict[str, XArr], position: int) -> XlExpr:
    eps = kwargs.get("eps", args[position] if len(args) > position else None)
    return num(1e-5) if eps is None else eps.slice(0, 0, 1, 1)


def normalize_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """(x - mean) / sqrt(var + eps) per row (layer norm without gain and bias)."""
    _no_kwargs(kwargs, "eps")
    x, eps = args[0], _eps(args, kwargs, 1)
    n = x.logical[1]
    return [Piece(p.r0, p.c0, _normalized(p, n, eps)) for p in _rowwise_tiles(x)]


def norm_scale_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """sqrt(population variance + eps) of each row, as a column."""
    _no_kwargs(kwargs, "eps")
    x, eps = args[0], _eps(args, kwargs, 1)
    n = x.logical[1]
    pieces = []
    for p in _rowwise_tiles(x):
        _, var = _row_stats(p, n)
        pieces.append(Piece(p.r0, 0, _fit(fn("SQRT", op(var, "+", eps)), p.x.rows, 1)))
    return pieces


def _gelu(x: XlExpr) -> XlExpr:
    inner = op(Lit("SQRT(2/PI())"), "*", op(x, "+", op(num(0.044715), "*", op(x, "^", num(3)))))
    return op(op(num(0.5), "*", x), "*", op(num(1), "+", fn("TANH", inner)))


def reduce_form(name: str) -> Form:
    """SUM/AVERAGE/MAX/MIN of everything (axis=None) or of each row (the last axis of a
    matrix): sums by MMULT with ones, MAX/MIN by one formula per row."""

    def form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
        _no_kwargs(kwargs, "axis", "keepdims")
        axis = _static(kwargs.get("axis"), args[1].value if len(args) > 1 else None)
        x = args[0]
        if axis is None:
            if len(x.pieces) == 1:
                return [Piece(0, 0, Agg(name, x.whole()))]
            raise NoExcelForm("reduction over a split matrix")
        if axis not in (-1, x.array.ndim - 1) or x.array.ndim != 2:
            raise NoExcelForm(f"{name} along axis {axis}")
        keep = bool(_static(kwargs.get("keepdims"), False))
        whole = x.whole()
        if name in ("MAX", "MIN"):  # keepdims: a column (rows × 1), else a row in our view
            return [
                Piece(k, 0, Agg(name, row_of(whole, k)))
                if keep
                else Piece(0, k, Agg(name, row_of(whole, k)))
                for k in range(whole.rows)
            ]
        sums = row_sums(whole)
        col = op(sums, "/", num(x.logical[1])) if name == "AVERAGE" else sums
        return [Piece(0, 0, col if keep else transpose(col))]

    return form


def argmax_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """MATCH of MAX: the first position holding the largest value, 0-based."""
    _no_kwargs(kwargs)
    x = args[0]
    if x.array.ndim != 1 or len(args) > 1:
        raise NoExcelForm("argmax of a non-vector")
    v = x.whole()
    text = v.render(v.natural)
    return [Piece(0, 0, Lit(f"(MATCH(MAX({text}),{text},0)-1)"))]


def positions_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """The first n rows of the position table: a plain range."""
    rows, cols = logical_shape(np.asarray(result).shape)
    return [Piece(0, 0, args[0].slice(0, 0, rows, cols))]


def embed_tokens_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """Each token's row of the table by INDEX(wte, N(id) + 1, 0), one formula per token row:
    a lookup that follows the id on the sheet (a one-hot MMULT would cost vocab × tokens
    multiply-adds per column). N(): an empty padding id reads as 0, never as an error."""
    wte, ids = args
    if ids.array.ndim != 1:
        raise NoExcelForm("token ids must be a vector")
    table = wte.whole()
    return [
        Piece(k, 0, RowPick(table, fn("N", ids.slice(0, k, 1, 1)), 1, table.cols))
        for k in range(ids.shape[0])
    ]


def split_heads_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    qkv, part, n_head = args[0], int(args[1].value), int(args[2].value)
    t, width = qkv.shape
    n_embd = width // 3
    d = n_embd // n_head
    return [Piece(h * t, 0, qkv.slice(0, part * n_embd + h * d, t, d)) for h in range(n_head)]


def merge_heads_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    z = args[0]
    h, _, d = z.shape
    return [Piece(0, i * d, z.block(i)) for i in range(h)]


def attention_scores_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """Per head: IF(row ≥ column, q·kᵀ / SQRT(d_head), -1E+300) — the causal mask."""
    q, k = args
    n_head, t, d = q.shape
    pieces = []
    for h in range(n_head):
        scores = op(mmult(q.block(h), transpose(k.block(h))), "/", Lit(f"SQRT({d})"))
        causal = op(Index0(t, 1), ">=", Index0(1, t))
        masked = fn("IF", causal, scores, Lit(MASKED))
        pieces.append(Piece(h * t, 0, masked))
    return pieces


def last_row_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """The last row; with a token capacity, row n_tokens (the rows below are padding)."""
    x = args[0]
    if x.array.ndim != 2:
        raise NoExcelForm("last_row of a non-matrix")
    rows, cols = x.logical
    count = capacity.count_ref()
    if count is None:
        return [Piece(0, 0, x.slice(rows - 1, 0, 1, cols))]
    return [Piece(0, 0, RowPick(x.whole(), op(count, "-", num(1)), 1, cols))]


def len_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    """How many numbers: COUNT, so that typing a token id in an empty row counts it."""
    if len(args) != 1 or kwargs or not args[0].pieces or len(args[0].pieces) != 1:
        raise NoExcelForm("len of a value not on one sheet range")
    return [Piece(0, 0, Agg("COUNT", args[0].whole()))]


def zero_head_form(args: list[XArr], kwargs: dict[str, XArr], result: Any) -> list[Piece]:
    x, head = args[0], int(args[1].value)
    n, t, _ = x.shape
    return [
        Piece(h * t, 0, op(x.block(h), "*", num(0)) if h == head else x.block(h)) for h in range(n)
    ]


def _binary_if(symbol: str) -> Form:
    return elementwise(lambda a, b: fn("IF", op(a, symbol, b), a, b), 2)


EXCEL_FORMS: dict[str, Form] = {
    "matmul": matmul_form,
    "transpose": transpose_form,
    "exp": excel_function("EXP"),
    "log": excel_function("LN"),
    "sqrt": excel_function("SQRT"),
    "tanh": excel_function("TANH"),
    "abs": excel_function("ABS"),
    "sign": excel_function("SIGN"),
    "maximum": _binary_if(">="),
    "minimum": _binary_if("<="),
    "where": elementwise(lambda c, a, b: fn("IF", c, a, b), 3),
    "relu": elementwise(lambda x: fn("IF", op(x, ">", num(0)), x, num(0)), 1),
    "gelu": elementwise(_gelu, 1),
    "softmax": softmax_form,
    "layer_norm": layer_norm_form,
    "normalize": normalize_form,
    "norm_scale": norm_scale_form,
    "sum": reduce_form("SUM"),
    "mean": reduce_form("AVERAGE"),
    "amax": reduce_form("MAX"),
    "max": reduce_form("MAX"),
    "amin": reduce_form("MIN"),
    "min": reduce_form("MIN"),
    "argmax": argmax_form,
    # GPT-2's functions
    "positions": positions_form,
    "embed_tokens": embed_tokens_form,
    "split_heads": split_heads_form,
    "merge_heads": merge_heads_form,
    "attention_scores": attention_scores_form,
    "last_row": last_row_form,
    "len": len_form,
    "zero_head": zero_head_form,
}

# Operators of the formula language, as Excel operators.
BIN_OPS = {"Add": "+", "Sub": "-", "Mult": "*", "Div": "/", "Pow": "^"}
CMP_OPS = {"Eq": "=", "NotEq": "<>", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">="}
CONSTANTS = {"pi": Lit("PI()"), "e": Lit("EXP(1)")}


def with_excel_forms(library: FunctionLibrary) -> FunctionLibrary:
    """A copy of `library` where functions without an Excel form get ours (if we have one)."""
    out = library.copy()
    for name, form in EXCEL_FORMS.items():
        if name in out.functions and out.functions[name].excel is None:
            out.functions[name] = dataclasses.replace(out.functions[name], excel=form)
    return out


def excel_form(library: FunctionLibrary, name: str) -> Form | None:
    if name not in library:
        return None
    return library[name].excel or EXCEL_FORMS.get(name)
