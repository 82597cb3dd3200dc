"""Byte-level BPE: pre-split, traced merges, encode/decode, training, named tokenizers."""
