"""The Textual TUI: browse every stage of the model, edit a formula, re-run one cell.

The app is `cellgpt.tui.app.CellGptApp`; this package file imports nothing, so that
`import cellgpt.tui.<module>` stays cheap (the CLI's --help never loads Textual)."""
