"""GPT-2 in cells: the model's library functions, generation and a reference forward."""
