"""Excel expressions for matrices, rendered straight or transposed.

A node stands for a logical `rows × cols` matrix. `render(t)` gives Excel text for it, or for
its transpose when `t` is true; transposes are pushed down to the leaves
(TRANSPOSE(MMULT(a, b)) = MMULT(TRANSPOSE(b), TRANSPOSE(a))) so a vocab × positions sheet
never needs a 50,257-column intermediate. Everything renders to legacy array-formula syntax
that Excel and LibreOffice both evaluate (no LET, no dynamic arrays, no VSTACK).
"""

from __future__ import annotations

from dataclasses import dataclass

from cellgpt.export.layout import MAX_COLS, Placement, col_letter

# Excel has no infinity: a masked attention score is this finite stand-in. EXP of it minus
# anything is exactly 0, so softmax gives the engine's exact zeros.
MASKED = "-1E+300"
MASKED_VALUE = -1e300


class XlExpr:
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        raise NotImplementedError

    @property
    def natural(self) -> bool:
        """The orientation that renders without a TRANSPOSE (for aggregates)."""
        return False

    @property
    def is_scalar(self) -> bool:
        return self.rows == 1 and self.cols == 1


@dataclass
class Ref(XlExpr):
    """A rectangle of a sheet; `stored_t` says the range holds the matrix transposed."""

    text: str
    rows: int
    cols: int
    stored_t: bool = False
    origin: tuple[Placement, int, int] | None = None  # the cell range and logical offset

    def sub(self, dr: int, dc: int, rows: int, cols: int) -> Ref:
        """A rectangle inside this one (offsets in logical coordinates)."""
        if self.origin is None:
            raise ValueError("not a sliceable range")
        placement, r0, c0 = self.origin
        return cell_ref_expr(placement, r0 + dr, c0 + dc, rows, cols)

    def render(self, t: bool = False) -> str:
        if self.is_scalar or t == self.stored_t:
            return self.text
        return f"TRANSPOSE({self.text})"

    @property
    def natural(self) -> bool:
        return self.stored_t


@dataclass
class Lit(XlExpr):
    """A scalar written as Excel text (a number, PI(), SQRT(16))."""

    text: str
    rows: int = 1
    cols: int = 1

    def render(self, t: bool = False) -> str:
        return self.text


def cell_ref_expr(placement: Placement, r0: int, c0: int, rows: int, cols: int) -> Ref:
    """The logical rectangle of a placed cell as a range expression (its defined name when
    it is the whole cell)."""
    text, stored_t = placement.logical_range(r0, c0, rows, cols)
    if placement.name is not None and (r0, c0, rows, cols) == (0, 0, *placement.logical):
        text = placement.name
    return Ref(text, rows, cols, stored_t, (placement, r0, c0))


def num(value: float) -> Lit:
    text = repr(float(value)) if not float(value).is_integer() else str(int(value))
    return Lit(text.replace("e", "E"))


@dataclass
class Op(XlExpr):
    """Element-wise binary operator with Excel's broadcasting of single rows/columns."""

    a: XlExpr
    op: str
    b: XlExpr
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        return f"({self.a.render(t)}{self.op}{self.b.render(t)})"

    @property
    def natural(self) -> bool:
        return _natural(self.a, self.b)


def _natural(*args: XlExpr) -> bool:
    """Element-wise nodes follow their first matrix operand's preferred orientation."""
    for a in args:
        if not a.is_scalar:
            return a.natural
    return False


def op(a: XlExpr, symbol: str, b: XlExpr) -> Op:
    return Op(a, symbol, b, max(a.rows, b.rows), max(a.cols, b.cols))


@dataclass
class Neg(XlExpr):
    x: XlExpr
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        return f"(-{self.x.render(t)})"

    @property
    def natural(self) -> bool:
        return self.x.natural


def neg(x: XlExpr) -> Neg:
    return Neg(x, x.rows, x.cols)


@dataclass
class Fn(XlExpr):
    """An element-wise Excel function of matrices (EXP, TANH, IF, ...)."""

    name: str
    args: tuple[XlExpr, ...]
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        return f"{self.name}({','.join(a.render(t) for a in self.args)})"

    @property
    def natural(self) -> bool:
        return _natural(*self.args)


def fn(name: str, *args: XlExpr) -> Fn:
    return Fn(name, args, max(a.rows for a in args), max(a.cols for a in args))


@dataclass
class Agg(XlExpr):
    """A scalar aggregate of a whole matrix (MAX, SUM, AVERAGE, MIN)."""

    name: str
    x: XlExpr
    rows: int = 1
    cols: int = 1

    def render(self, t: bool = False) -> str:
        return f"{self.name}({self.x.render(self.x.natural)})"


@dataclass
class MMult(XlExpr):
    a: XlExpr
    b: XlExpr
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        if t:
            return f"MMULT({self.b.render(True)},{self.a.render(True)})"
        return f"MMULT({self.a.render()},{self.b.render()})"


def mmult(a: XlExpr, b: XlExpr) -> MMult:
    if a.cols != b.rows:
        raise ValueError(f"MMULT of {a.rows}x{a.cols} and {b.rows}x{b.cols}")
    return MMult(a, b, a.rows, b.cols)


@dataclass
class Transpose(XlExpr):
    x: XlExpr
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        return self.x.render(not t)

    @property
    def natural(self) -> bool:
        return not self.x.natural


def transpose(x: XlExpr) -> XlExpr:
    if isinstance(x, Transpose):
        return x.x
    return x if x.is_scalar else Transpose(x, x.cols, x.rows)


def _column_of(n: int, body: str) -> str:
    """An n×1 column built from ROW() over the first n rows (any sheet's rows will do)."""
    return body.format(f"ROW($A$1:$A${n})")


def _row_of(n: int, body: str) -> str:
    """A 1×n row from COLUMN(); past Excel's column limit, the transposed column."""
    if n <= MAX_COLS:
        return body.format(f"COLUMN($A$1:${col_letter(n - 1)}$1)")
    return f"TRANSPOSE({_column_of(n, body)})"


@dataclass
class Ones(XlExpr):
    """A vector of ones (n×1 or 1×n), for row sums with MMULT."""

    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        rows, cols = (self.cols, self.rows) if t else (self.rows, self.cols)
        if cols == 1:
            return _column_of(rows, "{}^0")
        if rows == 1:
            return _row_of(cols, "{}^0")
        raise ValueError("Ones is a vector")


@dataclass
class Index0(XlExpr):
    """0, 1, ..., n-1 as a column (n×1) or a row (1×n)."""

    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        rows, cols = (self.cols, self.rows) if t else (self.rows, self.cols)
        if cols == 1:
            return _column_of(rows, "({}-1)")
        return _row_of(cols, "({}-1)")


def row_sums(x: XlExpr) -> XlExpr:
    """Sum of each row, as a column (rows×1)."""
    if x.cols == 1:
        return x
    if x.rows == 1:
        return Agg("SUM", x)
    return mmult(x, Ones(x.cols, 1))


@dataclass
class RowPick(XlExpr):
    """Row `k` (a 0-based scalar expression) of a matrix, by INDEX(x, k+1, 0): a lookup,
    where a one-hot MMULT would cost a multiply-add per row of `x`."""

    x: XlExpr
    k: XlExpr
    rows: int
    cols: int

    def render(self, t: bool = False) -> str:
        k = self.k.render()
        if self.x.natural:  # x is stored transposed: its rows are the range's columns
            picked = f"INDEX({self.x.render(True)},0,{k}+1)"
            return picked if t else f"TRANSPOSE({picked})"
        picked = f"INDEX({self.x.render()},{k}+1,0)"
        return f"TRANSPOSE({picked})" if t else picked

    @property
    def natural(self) -> bool:
        return self.x.natural


def row_of(x: XlExpr, k: int | XlExpr) -> XlExpr:
    """Row k of x as a 1×cols expression: a sub-range when x is a range, else INDEX."""
    if isinstance(k, int):
        if isinstance(x, Ref) and x.origin is not None:
            return x.sub(k, 0, 1, x.cols)
        if x.rows == 1:
            return x
        k = num(k)
    return RowPick(x, k, 1, x.cols)
