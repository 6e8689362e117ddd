"""The `Source` base class and the one registry of source kinds.

Shape legend, used across promptscape::

    B  batch of sequences          T  sequence length (task length, or context length)
    L  prompt length               V  alphabet size, the source's `vocab_size` (symbols 0..V-1)
    K  number of hidden components (coins, categoricals, topics) of a source

A source is its own config: a frozen, keyword-only dataclass whose fields are its
parameters (tuples of floats, never arrays), so it is hashable, comparable, feeds the
stable seed hash and round-trips through YAML. Each kind implements two hooks:

* ``_sample(n, length, rng)`` draws ``(n, length)`` sequences;
* ``_log_predictive(seqs)`` returns the exact Bayes-optimal sequential predictive
  ``log q(x_t = v | x_<t)`` as ``(B, T, V)``: position t predicts x_t from x_1..x_{t-1}.

Exchangeable kinds implement ``_log_marginal(counts)`` instead of ``_log_predictive``: the
log probability of *one particular* sequence whose symbol counts are ``counts`` (``(..., V)``,
``counts[..., v]`` the number of symbols v; binary: ``[zeros, ones]``). Everything a Bayes
predictor needs then follows from counts (see `log_predictive`): prompts and sequences fall
into count classes, the compositions of their length into V parts (`compositions`).

Every source declares its vocabulary size ``vocab_size`` (V, at most `MAX_VOCAB_SIZE`: symbols
are written as the digits 0..V-1 in artifacts). Binary kinds say 2.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from promptscape import special, validation

# Symbols are written as single characters in artifacts (readable strings such as "0120" or
# "the_"): the digits 0..V-1 for the synthetic alphabets, so those have at most ten symbols;
# the 27 symbols of the word kinds are written a..z and _. Any other V is a named config
# error. `alphabet_of` is the one place that maps V to its characters.
MAX_VOCAB_SIZE = 10
DIGITS = "0123456789"
WORD_ALPHABET = "abcdefghijklmnopqrstuvwxyz_"

# Character code -> symbol, for both alphabets (a string is written in one of them).
_SYMBOL_OF = np.full(256, 255, dtype=np.uint8)
_SYMBOL_OF[np.frombuffer(DIGITS.encode("ascii"), dtype=np.uint8)] = np.arange(len(DIGITS))
_SYMBOL_OF[np.frombuffer(WORD_ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(
    len(WORD_ALPHABET))


def alphabet_of(vocab_size: int) -> str:
    """The characters that write symbols 0..V-1 in artifacts, logs, figures and the summary:
    the digits ``0``..``V-1`` for 2 <= V <= `MAX_VOCAB_SIZE`, ``a``..``z`` and ``_`` for the
    27 symbols of the word kinds; a ValueError for any other V.

    >>> alphabet_of(3), alphabet_of(27)
    ('012', 'abcdefghijklmnopqrstuvwxyz_')
    """
    V = int(vocab_size)
    if 2 <= V <= MAX_VOCAB_SIZE:
        return DIGITS[:V]
    if V == len(WORD_ALPHABET):
        return WORD_ALPHABET
    raise ValueError(f"an alphabet of {V} symbols; 2 to {MAX_VOCAB_SIZE} are written as digits "
                     f"and {len(WORD_ALPHABET)} as {WORD_ALPHABET}")


def symbol_values(text: str) -> np.ndarray:
    """The symbols a string writes (either alphabet of `alphabet_of`): ``(len,)`` uint8.

    >>> symbol_values("0120").tolist(), symbol_values("the_").tolist()
    ([0, 1, 2, 0], [19, 7, 4, 26])
    """
    out = _SYMBOL_OF[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    if (out == 255).any():
        raise ValueError(f"{text[:40]!r} holds characters that write no symbol")
    return out

SOURCES: dict[str, type["Source"]] = {}


def register(cls: type["Source"]) -> type["Source"]:
    """Class decorator: make `cls` buildable from config under its `kind`."""
    if cls.kind in SOURCES:
        raise ValueError(f"source kind {cls.kind!r} is registered twice")
    SOURCES[cls.kind] = cls
    return cls


def build_source(spec: dict, where: str = "source") -> "Source":
    """Build a source from a config mapping ``{kind: ..., <parameters>}``.

    Errors are ConfigError naming `where` (the config key) and the field at fault.
    """
    if not isinstance(spec, dict):
        raise validation.ConfigError(f"{where}: must be a mapping with a 'kind', not {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in SOURCES:
        raise validation.ConfigError(
            f"{where}.kind == {kind!r}, unknown source kind; known kinds: "
            + ", ".join(sorted(SOURCES))
        )
    cls = SOURCES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec) - names)
    if unknown:
        raise validation.ConfigError(
            f"{where}: unknown field(s) {unknown} for source kind {kind!r}; "
            f"its fields are {sorted(names)}"
        )
    required = sorted(f.name for f in dataclasses.fields(cls)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    absent = [name for name in required if name not in spec]
    if absent:
        raise validation.ConfigError(f"{where}: missing field(s) {absent} for source kind {kind!r}")
    try:
        source = cls(**{k: _frozen(v) for k, v in spec.items()})
    except TypeError as error:
        raise validation.ConfigError(f"{where}: {error}") from None
    except ValueError as error:
        raise validation.ConfigError(f"{where}: {error}") from None
    try:
        alphabet_of(source.vocab_size)
    except ValueError:
        raise validation.ConfigError(
            f"{where}: a {kind} source over {source.vocab_size} symbols; promptscape writes "
            f"symbols as the digits 0..9, so a source has 2 to {MAX_VOCAB_SIZE} symbols "
            f"(or {len(WORD_ALPHABET)}, written {WORD_ALPHABET}, for the word kinds)") from None
    return source


def _frozen(value):
    """Config lists (nested too) -> tuples, so sources stay hashable."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source:
    """Base of every source kind. Subclasses are frozen keyword-only dataclasses."""

    kind: ClassVar[str] = "source"
    exchangeable: ClassVar[bool] = False  # sequence probability depends on counts only
    # Whether `length_classes` lists the classes of a length without enumerating its V^L
    # prompts (count or transition classes), so that optima beyond L_max are known.
    classes_by_length: ClassVar[bool] = True

    @property
    def vocab_size(self) -> int:
        """V: the source emits symbols 0..V-1. Every kind declares it (binary kinds: 2)."""
        raise NotImplementedError(f"source kind {self.kind!r} does not declare its vocab_size")

    @property
    def alphabet(self) -> str:
        """The characters that write symbols 0..V-1 in artifacts, logs and figures
        (`alphabet_of`: digits, or a..z and _ for the 27 symbols of the word kinds)."""
        return alphabet_of(self.vocab_size)

    def to_dict(self) -> dict:
        """Plain config mapping, the inverse of `build_source`."""
        out = {"kind": self.kind}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.default is None:
                continue  # an unused optional parameter: absent, as in the config
            out[field.name] = _listed(value)
        return out

    # ------------------------------------------------------- the meta-distribution
    def iid_distribution(self) -> tuple[float, ...] | None:
        """The categorical ``(p_0, ..., p_{V-1})`` of a source whose symbols are i.i.d. (a
        fixed coin or categorical), else None."""
        return None

    def supports(self, probs: tuple[float, ...]) -> bool | None:
        """As a prior: whether i.i.d. symbols from `probs` lie in its support (a task in the
        meta-distribution), or None where the kind does not say (the config's label is then
        taken as given)."""
        return None

    def supports_task(self, task: "Source") -> bool | None:
        """As a prior: whether `task` lies in its support (the config's
        ``in_meta_distribution``), or None where the kind does not say. By default a task is
        in it when its symbols are i.i.d. from a categorical the prior `supports`; a task
        that is not i.i.d. is in the support of no exchangeable prior (whose members are all
        i.i.d.). Kinds whose members are not i.i.d. override this."""
        probs = task.iid_distribution()
        if probs is None:
            says = type(self).supports is not Source.supports
            return False if self.exchangeable and says else None
        return self.supports(tuple(probs))

    def entropy(self, length: int) -> float | None:
        """The exact entropy (nats) of `length` symbols in closed form, or None where the
        kind states none (`landscape.task_entropy` then counts or enumerates)."""
        return None

    def symbol_marginals(self, length: int) -> np.ndarray | None:
        """The probability of each symbol averaged over the `length` positions of a
        sequence, ``(V,)``, where the kind states it without enumerating its V^length
        sequences (the word kinds), else None (`edits.symbol_marginals` then uses the
        exchangeable law or enumerates)."""
        return None

    def support_size(self, length: int) -> int | None:
        """The number of sequences of `length` symbols of positive probability, where the
        kind counts them without enumerating its V^length sequences (the word kinds without
        out-of-vocabulary words), else None. `support` enumerates exactly these."""
        return None

    def support(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Every sequence of `length` symbols of positive probability, in code order (x_1
        most significant, as `prompts.enumerate_sequences`), and its log-probability:
        ``(seqs (X, length) uint8, log_p (X,))``, X = `support_size`. Only where
        `support_size` is not None; `landscape.exact_sequences` decides when it is used."""
        raise NotImplementedError(f"source kind {self.kind!r} does not enumerate its support")

    def describe(self) -> str:
        """Short human-readable form such as ``coin_mixture(thetas=[0.2, 0.7])``."""
        fields = ", ".join(
            f"{k}={v}" for k, v in self.to_dict().items() if k != "kind"
        )
        return f"{self.kind}({fields})"

    # ----------------------------------------------------------------- public API
    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """Draw `n` sequences of `length` symbols 0..V-1; returns uint8 ``(n, length)``."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.kind}.sample needs a numpy Generator, not {type(rng).__name__}")
        seqs = self._sample(int(n), int(length), rng)
        if seqs.shape != (n, length):
            raise AssertionError(f"{self.kind}._sample returned {seqs.shape}, not {(n, length)}")
        return seqs.astype(np.uint8, copy=False)

    def log_predictive(self, seqs: np.ndarray) -> np.ndarray:
        """Exact Bayes predictive ``log q(x_t = v | x_<t)`` for every position: ``(B, T, V)``.

        Position t predicts symbol t from the symbols before it, so position 0 is the prior
        predictive. The last symbol's own prediction is included; nothing after it is.
        """
        seqs = self.check_sequences(seqs)
        V = self.vocab_size
        if self.exchangeable:
            # Counts of each symbol strictly before each position: (B, T, V).
            onehot = (seqs[..., None] == np.arange(V)).astype(np.int64)
            before = np.cumsum(onehot, axis=1) - onehot
            base = self._log_marginal(before)
            # q(v | c) = m(c + e_v) / m(c), where m is the probability of one particular
            # sequence with those counts (exchangeability makes order irrelevant).
            unit = np.eye(V, dtype=np.int64)
            out = np.stack([self._log_marginal(before + unit[v]) - base for v in range(V)],
                           axis=-1)  # (B, T, V)
        else:
            out = self._log_predictive(seqs)
        if out.shape != seqs.shape + (V,):
            raise AssertionError(f"{self.kind} predictive has shape {out.shape}")
        return out

    def log_prob(self, seqs: np.ndarray) -> np.ndarray:
        """Log probability of each whole sequence under the source: ``(B,)``."""
        seqs = self.check_sequences(seqs)
        if self.exchangeable:
            return self._log_marginal(symbol_counts(seqs, self.vocab_size))
        return -symbol_losses(self.log_predictive(seqs), seqs).sum(1)

    def log_marginal(self, counts) -> np.ndarray:
        """Exchangeable kinds only: log P(one particular sequence with these symbol counts),
        ``counts`` ``(..., V)`` -> ``(...)``."""
        if not self.exchangeable:
            raise TypeError(f"source kind {self.kind!r} is not exchangeable")
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape[-1:] != (self.vocab_size,):
            raise ValueError(f"{self.kind}: counts must end in an axis of V = "
                             f"{self.vocab_size} symbols, got shape {counts.shape}")
        return self._log_marginal(counts)

    def count_log_probabilities(self, length: int) -> np.ndarray:
        """Exchangeable kinds only: log P(the count vector of `length` symbols is c) for each
        composition c of `compositions(length, V)` (binary: k ones, k = 0..length), the
        multinomial coefficient times `log_marginal(c)`: ``(C,)``."""
        counts = compositions(length, self.vocab_size)
        return log_multinomial(counts) + self.log_marginal(counts)

    # ------------------------------------------------------------ prompt classes
    # A prompt acts on a Bayes predictor only through a sufficient statistic of it: its
    # *class*. Prompts of one class condition the predictor identically, so landscapes,
    # searches and prompt efficiency score one representative per class and exact ties are
    # ties by construction. Exchangeable kinds: the symbol counts (`compositions`, their
    # representative `prompts.canonical_prompt`). Other kinds opt in by overriding the
    # three methods below (markov_beta: transition counts and last symbol).
    def prompt_class(self, prompt: str):
        """The class of `prompt` (hashable), or None where the kind states no classes."""
        if self.exchangeable:
            return tuple(prompt.count(str(v)) for v in range(self.vocab_size))
        return None

    def length_classes(self, length: int) -> tuple[list, list[str]]:
        """Every class of prompts of exactly `length` symbols and its representative, the
        lexicographically first prompt of the class: ``(classes, representatives)``."""
        if self.exchangeable:
            counts = compositions(length, self.vocab_size)
            return [tuple(int(v) for v in c) for c in counts], [canonical_prompt(c)
                                                                 for c in counts]
        raise NotImplementedError(f"source kind {self.kind!r} states no prompt classes")

    def class_losses(self, classes: list, seqs: np.ndarray) -> np.ndarray:
        """Loss ``-log P(x | s)`` of a prompt of each class on each sequence, ``(C, B)``."""
        if self.exchangeable:
            prompt_counts = np.asarray(classes, dtype=np.int64).reshape(-1, self.vocab_size)
            counts = symbol_counts(self.check_sequences(seqs), self.vocab_size)
            return self.count_losses(prompt_counts[:, None, :], counts[None, :, :])
        raise NotImplementedError(f"source kind {self.kind!r} states no prompt classes")

    def count_losses(self, prompt_counts, counts) -> np.ndarray:
        """Exchangeable kinds only: the loss of any prompt with symbol counts
        `prompt_counts` on any sequence with symbol counts `counts` (``(..., V)`` each,
        broadcast): ``lm(c(s)) - lm(c(s) + c(x))``, with lm = `log_marginal`."""
        prompt_counts = np.asarray(prompt_counts, dtype=np.int64)
        return (self.log_marginal(prompt_counts)
                - self.log_marginal(prompt_counts + np.asarray(counts, dtype=np.int64)))

    def check_sequences(self, seqs) -> np.ndarray:
        """`seqs` as ``(B, T)`` uint8, or a ValueError when not 2-d or not over 0..V-1."""
        seqs = np.asarray(seqs)
        if seqs.ndim != 2:
            raise ValueError(f"sequences must be a 2-d array (B, T), got shape {seqs.shape}")
        if seqs.size and (seqs.min() < 0 or seqs.max() >= self.vocab_size):
            raise ValueError(f"{self.kind}: sequences must hold symbols 0..{self.vocab_size - 1}")
        return seqs.astype(np.uint8, copy=False)

    def count_moments(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(V,)`` and covariance ``(V, V)`` of the symbol counts of a sequence of
        `length` symbols.

        The sampler's stated moments; tests hold every sampler to them.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------- hooks
    def _sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _log_predictive(self, seqs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _log_marginal(self, counts: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class BinarySource(Source):
    """Base of the binary kinds (symbols 0 and 1): V = 2, and their moments are stated for
    the count of ones (`ones_moments`)."""

    @property
    def vocab_size(self) -> int:
        return 2

    def ones_moments(self, length: int) -> tuple[float, float]:
        """Mean and variance of the number of ones in `length` symbols."""
        raise NotImplementedError

    def count_moments(self, length):
        mean, var = self.ones_moments(length)
        return (np.array([length - mean, mean]),
                np.array([[var, -var], [-var, var]]))


# Two distributions are the same when every probability agrees within this.
SAME_DISTRIBUTION_TOLERANCE = 1e-12


def same_distribution(p, q) -> bool:
    """Whether two categoricals are equal (within `SAME_DISTRIBUTION_TOLERANCE`)."""
    return len(p) == len(q) and all(abs(a - b) <= SAME_DISTRIBUTION_TOLERANCE
                                    for a, b in zip(p, q))


def in_meta_distribution(prior: "Source", task: "Source") -> bool | None:
    """Whether `task` lies in the support of `prior` (the config's ``in_meta_distribution``
    label), or None where the prior's kind does not say (`Source.supports_task`)."""
    return prior.supports_task(task)


def markdown() -> str:
    """Every registered kind as Markdown: its docstring, parameters and alphabet."""
    import inspect

    lines = ["# Source kinds", "",
             "Generated by `python -m promptscape.sources` from the registered kinds (one "
             "module each in `src/promptscape/sources/`); a test keeps it in sync.", "",
             "A source is `{kind: <kind>, <parameters>}` under `sources:` in a config. Every "
             "kind declares its alphabet size V (symbols 0..V-1, written as the digits "
             f"0..V-1, at most {MAX_VOCAB_SIZE}, unless the kind names its own alphabet: the "
             "word kinds write a..z and _); an experiment's tasks share its pretraining "
             "source's alphabet. "
             "Exchangeable kinds have count classes: a prompt acts only through its symbol "
             "counts.", ""]
    for kind in sorted(SOURCES):
        cls = SOURCES[kind]
        fields = []
        for field in dataclasses.fields(cls):
            required = (field.default is dataclasses.MISSING
                        and field.default_factory is dataclasses.MISSING)
            fields.append(f"`{field.name}`" + ("" if required else f" (default `{field.default}`)"))
        lines += [f"## `{kind}`", "",
                  inspect.cleandoc(cls.__doc__ or "(undocumented)"), "",
                  f"- parameters: {', '.join(fields) or 'none'}",
                  f"- alphabet: {_alphabet_line(cls)}",
                  f"- exchangeable: {'yes' if cls.exchangeable else 'no'}", ""]
    return "\n".join(lines)


def _alphabet_line(cls) -> str:
    if issubclass(cls, BinarySource):
        return "binary (V = 2)"
    own = getattr(cls, "ALPHABET", None)
    if own:
        own = alphabet_of(len(own))
        return f"V = {len(own)}, written `{own}`"
    return "V from its parameters"


def symbol_losses(log_predictive: np.ndarray, seqs: np.ndarray) -> np.ndarray:
    """Log loss of each symbol, ``-log q(x_t | ...)``: ``(B, T, V)`` predictive and ``(B, T)``
    symbols -> ``(B, T)`` nats. The one place every loss is read off a predictive."""
    target = np.asarray(seqs)[..., None].astype(np.int64)
    return -np.take_along_axis(log_predictive, target, axis=-1)[..., 0]


def validate_coins(source: "Source") -> None:
    """Validate and normalise `thetas` and `weights` (equal when omitted) of a source made of
    a finite set of coins, in place on the frozen dataclass."""
    thetas = validation.check_probabilities(source.thetas, f"{source.kind}.thetas")
    weights = source.weights
    if weights is None:
        weights = tuple(1.0 / len(thetas) for _ in thetas)
    weights = validation.check_weights(weights, f"{source.kind}.weights", len(thetas))
    object.__setattr__(source, "thetas", thetas)
    object.__setattr__(source, "weights", weights)


def _listed(value):
    """Tuples (nested too) -> lists, the config's form."""
    return [_listed(v) for v in value] if isinstance(value, tuple) else value


def symbol_counts(seqs: np.ndarray, vocab_size: int) -> np.ndarray:
    """Count of each symbol in each row: ``(..., T)`` symbols -> ``(..., V)`` int64."""
    seqs = np.asarray(seqs)
    return (seqs[..., None] == np.arange(vocab_size)).sum(axis=-2, dtype=np.int64)


def canonical_prompt(counts) -> str:
    """The lexicographically first prompt with these symbol counts: ``0^c0 1^c1 ...`` (the
    representative of an exchangeable source's count class)."""
    return "".join(str(v) * int(c) for v, c in enumerate(counts))


def compositions(n: int, parts: int) -> np.ndarray:
    """Every count vector of `n` symbols over `parts` symbols, ``(C(n + parts - 1, parts - 1),
    parts)`` int64, ordered by the count of the last symbol, then of the one before it, and
    so on (binary: ``[[n, 0], [n - 1, 1], ..., [0, n]]``, k ones for k = 0..n)."""
    n, parts = int(n), int(parts)
    # Built part by part for every total m <= n at once, so each smaller table is made once
    # (the recursion on (n - last, parts - 1) would remake them exponentially often):
    # table[m] holds the compositions of m into the parts so far, and the next part's
    # compositions of m are those of m - last with `last` appended, last = 0..m.
    table = [np.array([[m]], dtype=np.int64) for m in range(n + 1)]
    for _ in range(parts - 1):
        table = [np.concatenate([
            np.concatenate([table[m - last], np.full((len(table[m - last]), 1), last,
                                                     dtype=np.int64)], axis=1)
            for last in range(m + 1)]) for m in range(n + 1)]
    return table[n]


def row_index(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index in `table` (``(C, V)`` distinct non-negative integer rows, e.g. count vectors)
    of each row of `rows` ``(B, V)``; every row must be one of the table's."""
    base = int(max(table.max(initial=0), rows.max(initial=0))) + 1
    weights = base ** np.arange(table.shape[1], dtype=np.int64)
    keys = table @ weights
    order = np.argsort(keys)
    wanted = rows @ weights
    at = np.minimum(np.searchsorted(keys[order], wanted), len(order) - 1)
    if not np.array_equal(keys[order][at], wanted):
        raise ValueError("rows outside the given table")
    return order[at]


def log_multinomial(counts) -> np.ndarray:
    """log of the multinomial coefficient n! / prod_v c_v!, ``(..., V)`` -> ``(...)``: the
    number of sequences with these counts."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape[-1] == 2:  # log C(n, k), as the binary kinds always computed it
        return special.log_binom(counts.sum(-1), counts[..., 1])
    return special.gammaln(counts.sum(-1) + 1) - special.gammaln(counts + 1).sum(-1)


def bernoulli_log(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log theta, log(1 - theta)) computed accurately."""
    theta = np.asarray(theta, dtype=np.float64)
    return np.log(theta), np.log1p(-theta)
