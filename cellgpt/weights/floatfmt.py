"""Shortest round-trip decimal text for float32 arrays, fully vectorised.

For every value we find the fewest significant digits (1..9) whose decimal reads back to
the same float32 when parsed the way Python, numpy and pandas parse text: correctly
rounded to float64, then rounded to float32. Nine digits always suffice.

How: the value's rounding interval (half-way to each float32 neighbour) is scaled to
nine-digit units and a slightly widened copy tells, for every digit count at once, whether
a decimal of that length can fall inside; that lower bound is then confirmed with an exact
check, `float32(D * 10**E)`, which for |E| <= 22 is one correctly rounded float64
operation and so predicts a correct parser bit for bit. Values outside that exponent range
(|x| below ~1e-13 or above ~1e22, rare in weights) are re-checked with numpy's
correctly rounded parser and, where that disagrees, redone in Python.

Text is assembled by scattering bytes into a zero-filled buffer: no per-value Python.
Positional or scientific notation, whichever is shorter ("100", "1e7", "1e-5", "0.0025").
"""

from __future__ import annotations

import numpy as np

# Tables indexed by k + _K0 for decimal exponents k in [-_K0, _K0]: correctly rounded
# float64 10**k, and a multiplier/divisor pair so `v * _MUL / _DIV` is v * 10**k with a
# single rounding whenever |k| <= 22 (one factor is exactly 1, the other an exact power).
_K0 = 80
_POW = np.array([float(f"1e{k}") for k in range(-_K0, _K0 + 1)])
_MUL = np.array([float(f"1e{k}") if k >= 0 else 1.0 for k in range(-_K0, _K0 + 1)])
_DIV = np.array([float(f"1e{-k}") if k < 0 else 1.0 for k in range(-_K0, _K0 + 1)])
_P10 = _POW[_K0 : _K0 + 9]  # 1 .. 1e8
_INV_P10 = 1.0 / _P10
_P10_INT = np.array([10**k for k in range(0, 19)], dtype=np.int64)
_EXACT = 22
_SLACK = 1e-5  # nine-digit units; float64 scaling errors are ~1e-7 units
_LOG10_2 = float(np.log10(2.0))
_ASCII_PAIRS = np.array(
    [ord(str(i // 10)) | (ord(str(i % 10)) << 8) for i in range(100)], dtype="<u2"
)


def _scale(values: np.ndarray, k: np.ndarray) -> np.ndarray:
    """values * 10**k: one correctly rounded operation whenever |k| <= 22 (approximate,
    to ~1e-16 relative, beyond)."""
    i = k + _K0
    return values * _MUL[i] / _DIV[i]


def _interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 bounds half-way to the neighbouring float32 values of positive finite x."""
    bits = x.view(np.uint32)
    xd = x.astype(np.float64)
    below = (bits - np.uint32(1)).view(np.float32).astype(np.float64)  # 0 for the tiniest
    above = (bits + np.uint32(1)).view(np.float32).astype(np.float64)  # inf past FLT_MAX
    top = np.isinf(above)  # FLT_MAX: the gap above mirrors the one below
    above[top] = xd[top] + (xd[top] - below[top])
    return (xd + below) / 2, (xd + above) / 2


def _candidates(
    a: np.ndarray, e10: np.ndarray, p: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best p-digit decimal D * 10**E for each value and whether it round-trips exactly."""
    k = p - 1 - e10
    y = _scale(a, k)
    down = np.floor(y)
    up = down + 1.0
    exp = -k
    ok_down = _scale(down, exp).astype(np.float32) == x
    ok_up = _scale(up, exp).astype(np.float32) == x
    # Closest wins; an exact tie (rare, so fmod only there) goes to the even digit.
    closer = up - y < y - down
    tie = np.flatnonzero(up - y == y - down)
    closer[tie] = down[tie] % 2 == 1
    take_up = ok_up & (~ok_down | closer)
    return np.where(take_up, up, down), exp, ok_down | ok_up


def shortest_digits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For positive finite float32 `x`: integer digits D (no trailing zeros), exponent E
    and digit count n, such that D * 10**E is the shortest decimal reading back as x
    (the closest one if several)."""
    a = x.astype(np.float64)
    # Decimal exponent from the binary one: x in [2**(b-1), 2**b) puts log10(x) within
    # one of the estimate; compare with exact-enough powers of ten to settle it.
    _, b = np.frexp(x)
    e10 = np.floor((b.astype(np.float64) - 1) * _LOG10_2).astype(np.int64)
    e10 += a >= _POW[e10 + 1 + _K0]

    # Lower bound on the digit count from the (widened) interval in nine-digit units.
    lo, hi = _interval(x)
    scale9 = _POW[8 - e10 + _K0]
    lo9 = (lo * scale9)[None, :] - _SLACK
    hi9 = (hi * scale9)[None, :] + _SLACK
    # Dropping r digits works iff a multiple of 10**r lies inside; r=0 always does and
    # the test is monotonic in r, so the count of r that fit gives the digit count.
    # Arrays are [r, value] so numpy's inner loops run over the long axis.
    fits = np.floor(hi9 * _INV_P10[:, None]) * _P10[:, None] >= lo9
    p = 10 - np.count_nonzero(fits, axis=0)

    digits, exp, ok = _candidates(a, e10, p, x)
    todo = np.flatnonzero(~ok)
    while todo.size:  # boundary cases the estimate was too optimistic about
        todo = todo[p[todo] < 9]  # nine digits always work; far exponents get _fix_far
        if not todo.size:
            break
        p[todo] += 1
        d, e, good = _candidates(a[todo], e10[todo], p[todo], x[todo])
        digits[todo], exp[todo] = d, e
        todo = todo[~good]

    digits = digits.astype(np.int64)
    n = p + (digits >= _P10_INT[p])  # rounding up may carry into a new digit (9.99 → 10)
    # A carry or a short estimate can leave trailing zeros: strip them.
    while True:
        trailing = (digits % 10 == 0) & (digits > 0)
        if not trailing.any():
            break
        digits[trailing] //= 10
        exp[trailing] += 1
        n[trailing] -= 1
    return digits, exp, n


def _fix_far(x: np.ndarray, digits: np.ndarray, exp: np.ndarray, n: np.ndarray) -> None:
    """Confirm values with |E| > 22 against numpy's correctly rounded text parser; the
    rare misses are redone digit by digit in Python."""
    far = np.flatnonzero((np.abs(exp) > _EXACT) & (digits > 0))
    if not far.size:
        return
    zeros = np.zeros(far.size, dtype=np.int64)
    seps = np.full(far.size, ord("\n"), np.uint8)
    text = _render(zeros, digits[far], exp[far], n[far], seps)
    parsed = np.array(text.split(b"\n")[:-1]).astype(np.float64).astype(np.float32)
    for j in far[parsed != x[far]]:
        for p in range(1, 10):  # grow until it reads back
            candidate = f"{float(x[j]):.{p - 1}e}"
            if np.float32(float(candidate)) == x[j]:
                mant, _, ex = candidate.partition("e")
                d, e = int(mant.replace(".", "")), int(ex) - (p - 1)
                while d % 10 == 0:
                    d, e = d // 10, e + 1
                digits[j], exp[j], n[j] = d, e, len(str(d))
                break


def _render(
    neg: np.ndarray, digits: np.ndarray, exp: np.ndarray, n: np.ndarray, seps: np.ndarray
) -> bytes:
    """Text for each (sign, D with n digits, E) followed by its separator, as one bytes."""
    s = exp + n - 1  # value = d.ddd × 10**s
    point = exp < 0
    pos_len = np.maximum(s, 0) - np.minimum(exp, 0) + 1 + point
    abs_s = np.abs(s)
    sci_len = n + (n > 1) + 2 + (s < 0) + (abs_s >= 10)
    sci = sci_len < pos_len
    length = neg + np.where(sci, sci_len, pos_len)
    ends = np.cumsum(length + 1)
    buf = np.full(int(ends[-1]) if len(ends) else 0, ord("0"), dtype=np.uint8)
    start = ends - length - 1  # first byte of each value
    body = start + neg

    # Scientific mantissa is the positional text of d.ddd: the same rules with s = 0.
    s_eff = np.where(sci, 0, s)
    lead = np.where(s_eff < 0, 1 - s_eff, 0)  # "0.000" before the digits of small values
    has_point = np.where(sci, n > 1, point)
    # Nine ASCII digits of D, left-justified (two per uint16 from a lookup table).
    left = (digits * _P10_INT[9 - n]).astype(np.uint32)
    ascii9 = np.empty((len(digits), 10), dtype=np.uint8)
    pairs = ascii9.view("<u2")
    pairs[:, 0] = _ASCII_PAIRS[left // 10_000_000]
    rest = left % 10_000_000
    pairs[:, 1] = _ASCII_PAIRS[rest // 100_000]
    pairs[:, 2] = _ASCII_PAIRS[rest // 1000 % 100]
    pairs[:, 3] = _ASCII_PAIRS[rest // 10 % 100]
    ascii9[:, 8] = rest % 10 + 48
    sep_at = start + length
    # Digit j sits after the point when it is past the integer part; unused digits are
    # parked on the separator byte, which is written last.
    # [digit, value] layout keeps numpy's inner loops long.
    j = np.arange(9)[:, None]
    after_point = (j > s_eff) & (has_point & (s_eff >= 0))
    at = (body + lead) + j + after_point
    at = np.where(j < n, at, sep_at)
    buf[at] = ascii9[:, :9].T
    buf[(body + np.where(s_eff < 0, 1, s_eff + 1))[has_point]] = ord(".")
    buf[start[neg.astype(bool)]] = ord("-")
    if sci.any():
        ei = np.flatnonzero(sci)
        at = body[ei] + n[ei] + (n[ei] > 1)
        buf[at] = ord("e")
        at = at + 1
        neg_exp = s[ei] < 0
        buf[at[neg_exp]] = ord("-")
        at = at + neg_exp
        two = abs_s[ei] >= 10
        buf[at[two]] = abs_s[ei][two] // 10 + 48
        buf[at + two] = abs_s[ei] % 10 + 48
    buf[sep_at] = seps
    return buf.tobytes()


def _format_chunk(part: np.ndarray, row_length: int, first: int) -> bytes:
    neg = (part.view(np.uint32) >> 31).astype(np.int64)
    mag = np.abs(part)
    digits = np.zeros(part.shape, dtype=np.int64)
    exp = np.zeros(part.shape, dtype=np.int64)
    n = np.ones(part.shape, dtype=np.int64)
    nz = np.flatnonzero(mag)
    if nz.size == part.size:
        digits, exp, n = shortest_digits(mag)
    elif nz.size:
        digits[nz], exp[nz], n[nz] = shortest_digits(mag[nz])
    _fix_far(mag, digits, exp, n)
    seps = np.full(part.shape, ord(","), dtype=np.uint8)
    # `first` is the flat index of part[0]: rows end where (index + 1) % row_length == 0.
    seps[(row_length - 1 - first) % row_length :: row_length] = ord("\n")
    return _render(neg, digits, exp, n, seps)


def format_bytes(values: np.ndarray, row_length: int, chunk: int = 1 << 15) -> bytes:
    """CSV text of float32 `values` (flattened), `row_length` numbers per line, every line
    ending in '\\n'. Raises ValueError on NaN or infinity."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if not np.isfinite(flat).all():
        raise ValueError("cannot write NaN or infinity")
    if row_length <= 0 or flat.size % row_length:
        raise ValueError(f"{flat.size} values do not split into rows of {row_length}")
    return b"".join(
        _format_chunk(flat[i : i + chunk], row_length, i) for i in range(0, flat.size, chunk)
    )


def format_float32_shortest(array: np.ndarray) -> list[str]:
    """The shortest decimal text of each float32 value that reads back to the same float32."""
    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    if flat.size == 0:
        return []
    return format_bytes(flat, 1).decode("ascii").split("\n")[:-1]
