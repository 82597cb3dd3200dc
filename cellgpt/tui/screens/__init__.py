"""Modal screens: help, edit (formula / prompt / path), find."""
