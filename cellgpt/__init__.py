"""cellgpt: GPT-2 as a living spreadsheet.

import cellgpt
wb = cellgpt.open("gpt2", model="gpt2-mini", prompt="ROMEO:")
wb["h3.attn.pattern"]          # a numpy array
wb.table("logits")             # a pandas DataFrame with token labels
cellgpt.generate(wb, 20)       # 20 more tokens (greedy), appended to wb["generated"]
"""

from cellgpt.api import batch, full_library, generate, open

__version__ = "0.1.0"
__all__ = ["batch", "full_library", "generate", "open"]
