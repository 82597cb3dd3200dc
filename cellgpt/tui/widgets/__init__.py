"""Widgets of the TUI: the virtual matrix grid, cell tree, details, value pane, top-k bars."""
