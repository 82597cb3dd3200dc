"""The bar on top: the prompt (and generated continuation), the model, and — while a job
runs — what it is doing, a progress bar and how to cancel it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static

from cellgpt.tui.labels import visible


class PromptBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static(id="prompt-text")
        yield Static(id="prompt-guess")
        yield Static(id="job-label")
        yield ProgressBar(id="job-progress", show_eta=False)

    def on_mount(self) -> None:
        self.set_busy(None)
        self.show_guess(None)

    def show_guess(self, guess: tuple[str, float] | None) -> None:
        """The predicted next token, when the next-token panel is hidden (d shows it)."""
        label = self.query_one("#prompt-guess", Static)
        label.display = guess is not None
        if guess is not None:
            token, p = guess
            label.update(
                Text.assemble(
                    ("next ", "dim"), (f"'{visible(token)}'", "bold green"), (f" {p:.1%}", "cyan")
                )
            )

    def show_prompt(
        self, prompt: str, generated: str, model: str, n_tokens: int | None, tokenizer: str = ""
    ) -> None:
        text = Text.assemble(("prompt ", "bold reverse"), " ", (visible(prompt), "bold"))
        if generated:
            text.append(visible(generated), style="bold green")
        info = f"   {n_tokens} tokens" if n_tokens is not None else ""
        text.append(f"{info}   model {model}", style="dim")
        if tokenizer:  # the bundled model's vocabulary is not GPT-2's: say which one
            text.append(f"   tokenizer {tokenizer}", style="dim")
        self.query_one("#prompt-text", Static).update(text)

    def set_busy(self, title: str | None, done: int = 0, total: int | None = None) -> None:
        """Show a running job (title) with progress, or hide the indicator (None)."""
        label = self.query_one("#job-label", Static)
        bar = self.query_one("#job-progress", ProgressBar)
        label.display = bar.display = title is not None
        if title is None:
            return
        label.update(Text.assemble(("⟳ ", "bold cyan"), title, ("  Esc/c cancels", "dim")))
        bar.update(total=total, progress=done)
