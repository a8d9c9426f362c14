"""Resource limits of the model language: the settable ``Limits`` (defined torch-free in
``inference.limits``) and the fixed bounds that protect the interpreter itself."""

from __future__ import annotations

# The language package's own names for them (guards, checker and program import them here).
from inference.limits import DEFAULT_LIMITS, SMALLEST, Limits  # noqa: F401

#: Fixed bounds that are not settings (they protect the interpreter itself).
MAX_AST_DEPTH = 100
MAX_INT_BITS = 8_192
MAX_SEQUENCE_LENGTH = 100_000
MAX_STRING_CHARS = 100_000
MAX_PRINT_LINES = 1_000
MAX_PRINT_LINE_CHARS = 2_000
MAX_TEXT_ITEMS = 10_000
#: layers of one nn.GRU/LSTM/RNN: building and running them is Python work per layer
MAX_RECURRENT_LAYERS = 100
