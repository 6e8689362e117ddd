"""The prompt space and the encoding of sequences over V symbols.

Prompts are strings of the characters that write symbols 0..V-1 (`alphabet`: the digits
0..V-1 for V <= 10, `sources.base.MAX_VOCAB_SIZE`; ``a``..``z`` and ``_`` for the 27 symbols of
the word sources); the empty prompt is ``""``. The canonical order is by length, then lexicographically, which is also the
search's tie-break order (shorter first, then lexicographic), so ``argmin`` over prompts in
this order is deterministic. There are ``(V^(L_max + 1) - 1) / (V - 1)`` prompts of length at
most L_max.

Sequences of T symbols are also encoded as integers in base V, big-endian
(``encode([[0, 1, 1, 0]], 2) == [6]``), so that code order equals lexicographic order and the
``V**T`` codes enumerate every sequence.
"""

from __future__ import annotations

import itertools

import numpy as np

from promptscape.sources.base import (  # noqa: F401 (canonical_prompt: re-exported)
    MAX_VOCAB_SIZE, alphabet_of, canonical_prompt, symbol_counts, symbol_values)


def alphabet(vocab_size: int) -> str:
    """The characters that write symbols 0..V-1 (`sources.base.alphabet_of`), the one map
    every reader and writer of prompts and sequences uses.

    >>> alphabet(2), alphabet(27)[:3] + alphabet(27)[-1]
    ('01', 'abc_')
    """
    return alphabet_of(vocab_size)


def order_key(column):
    """A pandas ``sort_values`` key that sorts prompt (and sequence) columns in the canonical
    order of symbols: byte order for the digits; for the word alphabet the boundary ``_``
    (symbol 26, before ``a`` in bytes) sorts as ``{``, the byte after ``z``. Other columns
    are returned unchanged. The same rule as `study.tables` applies to stored rows.

    >>> import pandas as pd
    >>> pd.DataFrame({"prompt": ["_", "b", "a"]}).sort_values("prompt", key=order_key)["prompt"].tolist()
    ['a', 'b', '_']
    """
    import pandas as pd

    if (getattr(column, "name", None) in ("prompt", "sequence")
            and pd.api.types.is_string_dtype(column)):
        return column.str.replace("_", "{", regex=False)
    return column


def prompt_value(prompt: str, vocab_size: int) -> int:
    """A prompt's symbols read as a number in base V, big-endian (0 for the empty prompt).

    >>> prompt_value("21", 3), prompt_value("ba", 27)
    (7, 27)
    """
    if not prompt:
        return 0
    V = int(vocab_size)
    if V <= MAX_VOCAB_SIZE:
        return int(prompt, V)
    value = 0
    for symbol in symbol_values(prompt).tolist():
        value = value * V + symbol
    return value

# Codes are held in int64: V**T must stay below 2**63.
MAX_CODE = 2**63


def num_prompts(max_length: int, vocab_size: int) -> int:
    """Prompts of length 0..max_length over V symbols: sum_l V**l."""
    return sum(int(vocab_size) ** length for length in range(int(max_length) + 1))


def all_prompts(max_length: int, vocab_size: int) -> list[str]:
    """Every prompt of length 0..max_length over V symbols, in canonical order.

    >>> all_prompts(2, 2)
    ['', '0', '1', '00', '01', '10', '11']
    >>> all_prompts(1, 3)
    ['', '0', '1', '2']
    """
    digits = _digits(vocab_size)
    return ["".join(symbols) for length in range(max_length + 1)
            for symbols in itertools.product(digits, repeat=length)]


def prompt_index(prompt: str, vocab_size: int) -> int:
    """Position of a prompt in the canonical order of `all_prompts` (any L_max).

    >>> [prompt_index(p, 2) for p in all_prompts(2, 2)]
    [0, 1, 2, 3, 4, 5, 6]
    >>> prompt_index("21", 3)
    11
    """
    V, length = int(vocab_size), len(prompt)
    offset = (V**length - 1) // (V - 1)  # prompts shorter than this one
    return offset + prompt_value(prompt, V)


def prompt_at(index: int, vocab_size: int) -> str:
    """The prompt at a position of the canonical order (`prompt_index`'s inverse).

    >>> [prompt_at(i, 2) for i in range(7)] == all_prompts(2, 2)
    True
    >>> prompt_at(11, 3)
    '21'
    """
    V, index, length = int(vocab_size), int(index), 0
    characters = alphabet(V)
    while index >= V**length:
        index -= V**length
        length += 1
    digits = []
    for _ in range(length):
        index, digit = divmod(index, V)
        digits.append(characters[digit])
    return "".join(reversed(digits))


def prompt_counts(prompts: list[str], vocab_size: int) -> np.ndarray:
    """Count of each symbol in each prompt: ``(P, V)`` int64 (binary: [zeros, ones])."""
    _digits(vocab_size)
    out = np.zeros((len(prompts), vocab_size), dtype=np.int64)
    for length, (idx, arr) in group_by_length(prompts).items():
        out[idx] = symbol_counts(arr, vocab_size)
    return out


def to_array(text: str) -> np.ndarray:
    """'0110' -> array([0, 1, 1, 0], dtype=uint8); 'the_' -> array([19, 7, 4, 26])."""
    return symbol_values(text)


def to_arrays(texts: list[str], length: int) -> np.ndarray:
    """Equal-length strings -> ``(B, length)`` uint8."""
    if not texts:
        return np.zeros((0, length), dtype=np.uint8)
    flat = symbol_values("".join(texts))
    if flat.size != len(texts) * length:
        raise ValueError(f"sequences are not all of length {length}")
    return flat.reshape(len(texts), length).astype(np.uint8)


def to_strings(seqs: np.ndarray, vocab_size: int) -> list[str]:
    """``(B, T)`` symbols over V -> list of strings in V's `alphabet`."""
    seqs = np.asarray(seqs, dtype=np.uint8)
    codes = np.frombuffer(alphabet(vocab_size).encode("ascii"), dtype=np.uint8)
    if seqs.size and seqs.max() >= len(codes):
        raise ValueError(f"symbols above {len(codes) - 1} are outside an alphabet of "
                         f"{len(codes)} symbols")
    if seqs.shape[1] == 0:
        return [""] * seqs.shape[0]
    chars = codes[seqs]
    raw = chars.tobytes()
    T = seqs.shape[1]
    return [raw[i * T:(i + 1) * T].decode("ascii") for i in range(seqs.shape[0])]


def can_encode(length: int, vocab_size: int) -> bool:
    """Whether sequences of `length` symbols over V have int64 codes (V**T < 2**63)."""
    return int(vocab_size) ** int(length) < MAX_CODE


def encode(seqs: np.ndarray, vocab_size: int) -> np.ndarray:
    """``(B, T)`` symbols -> int64 codes in base V, big-endian (the first symbol is the most
    significant digit)."""
    seqs = np.asarray(seqs)
    T = seqs.shape[1]
    if not can_encode(T, vocab_size):
        raise ValueError(f"cannot encode sequences of {T} symbols over {vocab_size} in int64")
    weights = int(vocab_size) ** np.arange(T - 1, -1, -1, dtype=np.int64)
    return seqs.astype(np.int64) @ weights


def enumerate_sequences(length: int, vocab_size: int) -> np.ndarray:
    """All ``V**length`` sequences in code order: ``(V**length, length)`` uint8."""
    if not can_encode(length, vocab_size):
        raise ValueError(f"cannot enumerate sequences of {length} symbols over {vocab_size}")
    V = int(vocab_size)
    codes = np.arange(V**length, dtype=np.int64)
    powers = V ** np.arange(length - 1, -1, -1, dtype=np.int64)
    return ((codes[:, None] // powers[None, :]) % V).astype(np.uint8)


def group_by_length(prompts: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{length: (indices into prompts, (P_l, length) symbols)} in increasing length."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    return {
        length: (np.asarray(idx), to_arrays([prompts[i] for i in idx], length))
        for length, idx in sorted(groups.items())
    }


def _digits(vocab_size: int) -> str:
    return alphabet(vocab_size)
