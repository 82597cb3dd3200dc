"""Evaluate Formula on the adversarial corpus: explaining a hostile formula walks it with the
same evaluator and budgets as running it, so every attempt that was stopped in its cell is
stopped again in the explanation, with the same reason, and nothing is evaluated as code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellgpt.engine import CellError
from tests.engine import test_adversarial_formulas as corpus
from tests.engine.test_adversarial_formulas import ATTEMPTS, Attempt, Watch, _try

watch = corpus.watch


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=[a.id for a in ATTEMPTS])
def test_explaining_an_attempt_is_bounded_too(
    attempt: Attempt, watch: Watch, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    wb_box: list = []
    outcome, _ = _try(attempt, sentinel, keep=wb_box)
    if outcome == "refused":
        return  # never defined: nothing to explain
    wb = wb_box[0]
    try:
        explanation = wb.explain("evil")
    except CellError as exc:  # a helper cell it reads failed: said as that cell's error
        message = str(exc)
    else:
        assert explanation.error is not None, "the explanation ran what the cell could not"
        message = explanation.error
        failed = [n for n in explanation.nodes if n.error]
        assert failed and failed[-1] is explanation.nodes[-1]
    assert re.search(attempt.fragment, message, re.IGNORECASE), message
    assert not sentinel.exists()
    assert watch.calls == []
