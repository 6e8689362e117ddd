"""The prompt space and the encoding of binary sequences.

Prompts are strings over {'0', '1'}; the empty prompt is ``""``. The canonical order is by
length, then lexicographically, which is also the search's tie-break order (shorter first,
then lexicographic), so ``argmin`` over prompts in this order is deterministic.

Sequences of T symbols are also encoded as integers, big-endian (``code("0110") == 6``), so
that code order equals lexicographic order and ``2**T`` codes enumerate every sequence.
"""

from __future__ import annotations

import itertools

import numpy as np

# The search scores every prompt of length 0..L_max: 2**(L_max + 1) - 1 prompts. With
# L_max = 12 that is 8,191 prompts per (task, N, seed); each further unit doubles it, and a
# neural predictor must evaluate every prompt on every distinct task sequence, so 12 is the
# limit a 2-core machine serves in minutes.
MAX_PROMPT_LENGTH = 12
# Sequences are enumerated (and codes held in int64) up to this many symbols.
MAX_ENUMERATION_LENGTH = 20


def all_prompts(max_length: int) -> list[str]:
    """Every binary prompt of length 0..max_length, in canonical order.

    >>> all_prompts(2)
    ['', '0', '1', '00', '01', '10', '11']
    """
    return [
        "".join(bits)
        for length in range(max_length + 1)
        for bits in itertools.product("01", repeat=length)
    ]


def to_array(text: str) -> np.ndarray:
    """'0110' -> array([0, 1, 1, 0], dtype=uint8)."""
    return (np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")).astype(np.uint8)


def to_arrays(texts: list[str], length: int) -> np.ndarray:
    """Equal-length strings -> ``(B, length)`` uint8."""
    if not texts:
        return np.zeros((0, length), dtype=np.uint8)
    joined = "".join(texts).encode("ascii")
    flat = np.frombuffer(joined, dtype=np.uint8) - ord("0")
    if flat.size != len(texts) * length:
        raise ValueError(f"sequences are not all of length {length}")
    return flat.reshape(len(texts), length).astype(np.uint8)


def to_strings(seqs: np.ndarray) -> list[str]:
    """``(B, T)`` symbols -> list of strings."""
    seqs = np.asarray(seqs, dtype=np.uint8)
    if seqs.shape[1] == 0:
        return [""] * seqs.shape[0]
    chars = (seqs + ord("0")).astype(np.uint8)
    raw = chars.tobytes()
    T = seqs.shape[1]
    return [raw[i * T:(i + 1) * T].decode("ascii") for i in range(seqs.shape[0])]


def encode(seqs: np.ndarray) -> np.ndarray:
    """``(B, T)`` symbols -> int64 codes, big-endian (first symbol is the top bit)."""
    seqs = np.asarray(seqs)
    T = seqs.shape[1]
    if T > MAX_ENUMERATION_LENGTH:
        raise ValueError(f"cannot encode sequences longer than {MAX_ENUMERATION_LENGTH}")
    weights = (1 << np.arange(T - 1, -1, -1, dtype=np.int64))
    return seqs.astype(np.int64) @ weights


def enumerate_sequences(length: int) -> np.ndarray:
    """All ``2**length`` sequences in code order: ``(2**length, length)`` uint8."""
    if length > MAX_ENUMERATION_LENGTH:
        raise ValueError(f"cannot enumerate sequences longer than {MAX_ENUMERATION_LENGTH}")
    codes = np.arange(2**length, dtype=np.int64)
    shifts = np.arange(length - 1, -1, -1, dtype=np.int64)
    return ((codes[:, None] >> shifts[None, :]) & 1).astype(np.uint8)


def group_by_length(prompts: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{length: (indices into prompts, (P_l, length) symbols)} in increasing length."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    return {
        length: (np.asarray(idx), to_arrays([prompts[i] for i in idx], length))
        for length, idx in sorted(groups.items())
    }
