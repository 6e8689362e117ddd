"""The `word_stream` and `language_mixture` sources: streams of real words of one language.

The alphabet is ``a``..``z`` (symbols 0..25) and ``_`` (symbol 26), the boundary written after
every word. A sequence is the first T symbols of ``w1_w2_w3_...``, the words drawn
independently from a language's word model; under `language_mixture` the language is drawn
once per sequence. Word lists come from `wordfreq` (`word_list`), normalised as follows: the
first n words of ``wordfreq.top_n_list(language, n, wordlist='best')`` with frequencies from
``wordfreq.get_frequency_dict(language, wordlist='best')``; each word NFKD-normalised, its
combining marks dropped, lower-cased; a word that then holds anything but ``a``..``z`` is
dropped; duplicates merge by adding frequencies; the kept frequencies renormalise to sum to 1.

A language's word model (`Language`), with list frequencies f and out-of-vocabulary share
beta: a word comes from the list (by frequency) with probability 1 - beta, and with
probability beta it is out of vocabulary: its length k >= 1 has P(k) = rho (1 - rho)^(k - 1),
rho = 1 / (the list's frequency-weighted mean word length), and its letters are drawn
independently from q = 0.99 (the list's frequency-weighted letter distribution) + 0.01
(uniform over ``a``..``z``). So, for a non-empty string u,

    S(u) = P(next word starts with u) = (1 - beta) F(u) + beta (1 - rho)^(|u| - 1) prod q(c)
    W(u) = P(next word is u)          = (1 - beta) f(u) + beta rho (1 - rho)^(|u| - 1) prod q(c)

with F(u) the summed frequency of the list's words that start with u (a prefix table), and
S("") = 1. The probability of a context ``w1_..._wm_u`` (m complete words, u the trailing
partial word) under language l is ``prod_i W_l(w_i) S_l(u)``; a context holding an empty word
(a leading ``_`` or a ``__``) has probability 0. The exact Bayes predictor is the ratio of
two such probabilities mixed over the languages with their prior weights (the posterior over
languages times each language's next-symbol probability):

    q(c | context) = sum_l pi_l prod_i W_l(w_i) S_l(u c) / sum_l pi_l prod_i W_l(w_i) S_l(u)
    q(_ | context) = sum_l pi_l prod_i W_l(w_i) W_l(u)   / (the same),   0 when u is empty.

A context of probability 0 (impossible: a leading ``_``, a ``__``, and with beta = 0 a word or
word prefix that no list holds) has no predictive; the predictor gives every symbol
probability 0 after it (log-probability -inf), so a prompt the source cannot produce has
infinite loss on every task sequence: its KL is inf.

Prompt classes: a prompt acts only through the multiset of its complete words and its trailing
partial word (the product of word probabilities is order-free), so those are its class; every
impossible prompt is one class (`IMPOSSIBLE`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math
import unicodedata
from collections.abc import Sequence

import numpy as np

from promptscape import special, validation
from promptscape.sources.base import WORD_ALPHABET, Source, register

# The characters of symbols 0..26: the letters, then the word boundary.
ALPHABET = WORD_ALPHABET
LETTERS = 26
BOUNDARY = 26
# The uniform share of the out-of-vocabulary letter distribution (every letter possible).
UNIFORM_SHARE = 0.01
# The class of every prompt the source cannot produce (probability 0).
IMPOSSIBLE = ("<impossible>",)
# `length_classes` enumerates every prompt of a length up to this many prompts (27^4).
MAX_ENUMERATED_PROMPTS = 27 ** 4
# The memo of next-symbol tables is cleared beyond this many partial words.
MEMO_LIMIT = 200_000
# `support_size` counts the support of a mixture of at most this many languages (by
# inclusion and exclusion over their 2^K - 1 subsets); beyond, it states none.
MAX_SUPPORT_LANGUAGES = 12
# Word lists are read with this wordlist of wordfreq.
WORDLIST = "best"

_LOOKUP = np.full(256, 255, dtype=np.uint8)
_LOOKUP[np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(len(ALPHABET))


def to_text(symbols) -> str:
    """Symbols 0..26 -> their characters (``[19, 7, 4, 26]`` -> ``'the_'``)."""
    return "".join(ALPHABET[int(v)] for v in symbols)


def to_symbols(text: str) -> np.ndarray:
    """Characters ``a``..``z``, ``_`` -> symbols 0..26 (uint8)."""
    out = _LOOKUP[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    if (out == 255).any():
        raise ValueError(f"{text!r} holds characters outside a..z and _")
    return out


def wordfreq_version() -> str:
    """The installed wordfreq's version (part of every word source's identity)."""
    from importlib.metadata import version

    return version("wordfreq")


def known_languages() -> list[str]:
    """The language codes wordfreq has a ``best`` word list for."""
    import wordfreq

    return sorted(wordfreq.available_languages(wordlist=WORDLIST))


def normalise(word: str) -> str | None:
    """NFKD, combining marks dropped, lower-cased; None when anything but a..z remains."""
    decomposed = unicodedata.normalize("NFKD", word)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    if kept and all("a" <= c <= "z" for c in kept):
        return kept
    return None


@functools.lru_cache(maxsize=None)
def word_list(language: str, words: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The normalised word list of (language, n): words in order of their first appearance
    among the first n of wordfreq's top list, frequencies summing to 1 (module doc). A
    ValueError names an unknown language and a list that keeps no word."""
    import wordfreq

    if language not in known_languages():
        raise ValueError(f"language {language!r} is unknown to wordfreq "
                         f"{wordfreq_version()}; known: {', '.join(known_languages())}")
    top = wordfreq.top_n_list(language, int(words), wordlist=WORDLIST)
    freq = wordfreq.get_frequency_dict(language, wordlist=WORDLIST)
    merged: dict[str, float] = {}
    for word in top:
        kept = normalise(word)
        if kept is not None:
            merged[kept] = merged.get(kept, 0.0) + float(freq[word])
    if not merged:
        raise ValueError(f"language {language!r} with words == {words}: no word of the list "
                         f"is left after normalisation to a..z (a language in another script?)")
    total = math.fsum(merged.values())
    return tuple(merged), tuple(f / total for f in merged.values())


def lists_hash(languages, words: int) -> str:
    """sha256 (first 16 hex digits) of the normalised word lists of `languages`."""
    digest = hashlib.sha256()
    for language in languages:
        names, freqs = word_list(language, words)
        digest.update(f"{language}\n".encode())
        for word, f in zip(names, freqs):
            digest.update(f"{word}\t{f!r}\n".encode())
    return digest.hexdigest()[:16]


class Language:
    """One language's word model (module doc): list frequencies, prefix table F, rho, q."""

    def __init__(self, language: str, words: int, oov: float):
        self.language, self.oov = language, float(oov)
        self.words, freqs = word_list(language, words)
        self.freqs = np.asarray(freqs)
        self.frequency = dict(zip(self.words, freqs))
        prefix: dict[str, float] = {}
        for word, f in zip(self.words, freqs):
            for k in range(1, len(word) + 1):
                prefix[word[:k]] = prefix.get(word[:k], 0.0) + f
        self.prefix = prefix
        lengths = np.array([len(w) for w in self.words], dtype=float)
        self.mean_length = float(lengths @ self.freqs)
        if self.mean_length <= 1.0:
            raise ValueError(f"language {language!r} with words == {words}: every kept word "
                             f"has one letter, so out-of-vocabulary words would have length "
                             f"1 exactly (rho = 1); take more words")
        self.rho = 1.0 / self.mean_length
        letters = np.zeros(LETTERS)
        for word, f in zip(self.words, freqs):
            for c in word:
                letters[ord(c) - 97] += f
        letters /= letters.sum()
        self.letters = letters  # frequency-weighted letter distribution of the list
        self.q = (1.0 - UNIFORM_SHARE) * letters + UNIFORM_SHARE / LETTERS
        self.log_q = np.log(self.q)
        self._log_q = dict(zip(ALPHABET[:LETTERS], self.log_q.tolist()))
        self._log_oov = math.log(self.oov) if self.oov > 0 else -math.inf
        self._log_list = math.log1p(-self.oov)
        self._log_stay = math.log1p(-self.rho) if self.rho < 1 else -math.inf
        self._log_rho = math.log(self.rho)

    def _oov(self, s: str, whole: bool) -> float:
        """log of the out-of-vocabulary term of S(s) (whole False) or W(s) (whole True)."""
        if self.oov == 0.0:
            return -math.inf
        stay = (len(s) - 1) * self._log_stay if len(s) > 1 else 0.0
        return (self._log_oov + stay + (self._log_rho if whole else 0.0)
                + sum(self._log_q[c] for c in s))

    def log_start(self, s: str) -> float:
        """log S(s) = log P(next word starts with s); 0 for the empty string."""
        if not s:
            return 0.0
        listed = self.prefix.get(s, 0.0)
        head = self._log_list + math.log(listed) if listed > 0 else -math.inf
        return float(np.logaddexp(head, self._oov(s, False)))

    def log_word(self, s: str) -> float:
        """log W(s) = log P(next word is s); -inf for the empty string."""
        if not s:
            return -math.inf
        listed = self.frequency.get(s, 0.0)
        head = self._log_list + math.log(listed) if listed > 0 else -math.inf
        return float(np.logaddexp(head, self._oov(s, True)))


@functools.lru_cache(maxsize=64)
def _language(language: str, words: int, oov: float) -> Language:
    return Language(language, words, oov)


def _lse(x, axis: int = -1) -> np.ndarray:
    """`special.logsumexp`, -inf (not a warning) where every term is -inf (impossible)."""
    with np.errstate(divide="ignore"):
        return special.logsumexp(x, axis=axis)


def split_context(text: str) -> tuple[list[str], str] | None:
    """``'the_cat_sa'`` -> (['the', 'cat'], 'sa'); None when it holds an empty word (a
    leading ``_`` or a ``__``), which no stream produces."""
    parts = text.split("_")
    complete, partial = parts[:-1], parts[-1]
    if any(not w for w in complete):
        return None
    return complete, partial


class _WordSource(Source):
    """Shared machinery of the word kinds: the mixture over `self._languages()` with prior
    weights `self._weights()`. Subclasses are the frozen dataclasses."""

    exchangeable = False
    ALPHABET = ALPHABET
    classes_by_length = False  # `length_classes` enumerates the 27^L prompts

    # ------------------------------------------------------------- construction
    def _setup(self, languages, weights, words, oov, name):
        if isinstance(words, bool) or not isinstance(words, int):
            raise TypeError(f"{name}.words must be an integer, not {words!r}")
        if words < 1:
            raise ValueError(f"{name}.words == {words}, must be >= 1")
        oov = float(validation.check_scalar(oov, f"{name}.oov", (int, float), min_val=0,
                                            max_val=1, include_boundaries="left"))
        known = known_languages()
        for language in languages:
            if language not in known:
                raise ValueError(f"{name}: language {language!r} is unknown to wordfreq "
                                 f"{wordfreq_version()}; known: {', '.join(known)}")
        try:
            models = tuple(_language(language, words, oov) for language in languages)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        version, digest = wordfreq_version(), lists_hash(languages, words)
        for field, actual in (("wordfreq", version), ("lists", digest)):
            stated = getattr(self, field)
            if stated is not None and stated != actual:
                raise ValueError(f"{name}.{field} == {stated!r}, but this installation gives "
                                 f"{actual!r} (another wordfreq release, other word lists): "
                                 f"rebuild with the installed lists or install the stated "
                                 f"wordfreq")
        object.__setattr__(self, "oov", oov)
        object.__setattr__(self, "wordfreq", version)
        object.__setattr__(self, "lists", digest)
        object.__setattr__(self, "_models", models)
        object.__setattr__(self, "_log_prior", np.log(np.asarray(weights, dtype=float)))
        object.__setattr__(self, "_memo_next", {})
        object.__setattr__(self, "_memo_start", {})
        object.__setattr__(self, "_memo_word", {})
        object.__setattr__(self, "_memo_support", {})
        object.__setattr__(self, "_memo_sequences", {})

    @property
    def vocab_size(self) -> int:
        return len(ALPHABET)

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.to_dict().items()
                           if k not in ("kind", "wordfreq", "lists"))
        return f"{self.kind}({fields})"

    def language_models(self) -> tuple[Language, ...]:
        return self._models

    # ------------------------------------------------------------- word model
    def log_start(self, s: str) -> np.ndarray:
        """log S_l(s) of every language: ``(K,)``."""
        out = self._memo_start.get(s)
        if out is None:
            out = np.array([m.log_start(s) for m in self._models])
            self._memo_start[s] = out
        return out

    def log_word(self, s: str) -> np.ndarray:
        """log W_l(s) of every language: ``(K,)``."""
        out = self._memo_word.get(s)
        if out is None:
            out = np.array([m.log_word(s) for m in self._models])
            self._memo_word[s] = out
        return out

    def next_table(self, u: str) -> np.ndarray:
        """``(K, 27)``: log S_l(u c) for each letter c, then log W_l(u) (the boundary)."""
        out = self._memo_next.get(u)
        if out is None:
            out = np.empty((len(self._models), len(ALPHABET)))
            for c in range(LETTERS):
                out[:, c] = self.log_start(u + ALPHABET[c])
            out[:, BOUNDARY] = self.log_word(u)
            self._memo_next[u] = out
        return out

    def context_weights(self, text: str) -> tuple[np.ndarray, str] | None:
        """``(log pi_l + sum_i log W_l(w_i) for each language, the partial word)`` of a
        context, or None where it holds an empty word."""
        split = split_context(text)
        if split is None:
            return None
        complete, partial = split
        weights = self._log_prior.copy()
        for word in complete:
            weights = weights + self.log_word(word)
        return weights, partial

    def log_prob_text(self, text: str) -> float:
        """log P(the sequence starts with `text`) (-inf where impossible)."""
        state = self.context_weights(text)
        if state is None:
            return -math.inf
        weights, partial = state
        return float(_lse(weights + self.log_start(partial)))

    def symbol_marginals(self, length: int) -> np.ndarray:
        """P(x_t = v) averaged over t = 1..length, exactly, by the renewal structure: words
        start at position 1 and after every boundary, so with r(s) = P(a word starts at
        position s), r(1) = 1 and r(s) = sum_k r(s - k - 1) P(length k), position t holds
        letter v with probability sum_{s <= t} r(s) P(the word is longer than t - s and its
        letter t - s is v), and the boundary with sum_s r(s) P(length t - s). A word's
        letter j: list words by frequency, out-of-vocabulary words (1 - rho)^j q(v)."""
        T = int(length)
        V = len(ALPHABET)
        total = np.zeros(V)
        if T == 0:
            return total
        for weight, model in zip(np.exp(self._log_prior), self._models):
            beta, rho = model.oov, model.rho
            # P(length == k) for k = 0..T and P(letter j is v and length > j) for j < T.
            p_len = np.zeros(T + 1)
            letter = np.zeros((T, LETTERS))
            for word, f in zip(model.words, model.freqs):
                if len(word) <= T:
                    p_len[len(word)] += (1 - beta) * f
                for j, c in enumerate(word[:T]):
                    letter[j, ord(c) - 97] += (1 - beta) * f
            k = np.arange(1, T + 1)
            p_len[1:] += beta * rho * (1 - rho) ** (k - 1)
            letter += beta * (1 - rho) ** np.arange(T)[:, None] * model.q[None, :]
            start = np.zeros(T + 2)  # r(s), s = 1..T (index s)
            start[1] = 1.0
            for s in range(2, T + 1):
                start[s] = sum(start[s - kk - 1] * p_len[kk] for kk in range(1, s - 1))
            out = np.zeros((T, V))
            for t in range(1, T + 1):
                for s in range(1, t + 1):
                    out[t - 1, :LETTERS] += start[s] * letter[t - s]
                    out[t - 1, BOUNDARY] += start[s] * p_len[t - s] if t > s else 0.0
            total += weight * out.mean(axis=0)
        return total

    # ------------------------------------------------------------- support
    def _live_models(self) -> list[Language]:
        """The languages of positive prior weight."""
        return [m for m, w in zip(self._models, self._log_prior) if np.isfinite(w)]

    def support_size(self, length):
        """With ``oov`` 0, the number of sequences of `length` symbols of positive
        probability: the strings ``w1_..._wm_u`` of that length whose words w_i all come
        from one language's list and whose trailing u (possibly empty) is a prefix of a word
        of that list (`_count_streams`); under a mixture the union over the languages, by
        inclusion and exclusion over the subsets of languages (a string is in the support of
        every language of a subset when its words are in all their lists and u is a prefix
        in all of them). None with ``oov`` > 0 (every string without an empty word is
        possible) or beyond `MAX_SUPPORT_LANGUAGES` languages."""
        if self.oov > 0:
            return None
        live = self._live_models()
        if len(live) > MAX_SUPPORT_LANGUAGES:
            return None
        T = int(length)
        if T not in self._memo_support:  # the plan asks once per job
            total = 0
            for r in range(1, len(live) + 1):
                for subset in itertools.combinations(live, r):
                    words = set.intersection(*(set(m.words) for m in subset))
                    prefixes = set.intersection(*(set(m.prefix) for m in subset))
                    total += (-1) ** (r + 1) * _count_streams(words, prefixes, T)
            self._memo_support[T] = total
        return self._memo_support[T]

    def support(self, length):
        """The `support_size` sequences, in code order, with their log-probabilities under
        the source: each language's strings are built word by word (log W of its words plus
        log S of the trailing u), and a string's probability is the mixture of its
        languages'."""
        T = int(length)
        if self.support_size(T) is None:
            raise NotImplementedError(f"{self.describe()} enumerates its support only with "
                                      f"oov == 0 and at most {MAX_SUPPORT_LANGUAGES} languages")
        live = [(m, w) for m, w in zip(self._models, self._log_prior) if np.isfinite(w)]
        per_language = [_streams(m, T) for m, _ in live]
        texts = sorted(set().union(*per_language))
        if not texts:
            return np.zeros((0, T), dtype=np.uint8), np.zeros(0)
        log_p = _lse(np.array([[w + lp.get(t, -np.inf) for t in texts]
                               for (_, w), lp in zip(live, per_language)]), axis=0)
        seqs = (_LOOKUP[np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)]
                .reshape(len(texts), T))
        # Code order: symbol order, in which _ (26) follows the letters; in ASCII it precedes.
        order = np.lexsort(seqs.T[::-1]) if T else np.arange(len(texts))
        return seqs[order], np.asarray(log_p, dtype=float).reshape(-1)[order]

    # ------------------------------------------------------------- sampler
    def _sample(self, n, length, rng):
        z = rng.choice(len(self._models), size=n, p=np.exp(self._log_prior))
        per_row = length // 2 + 1  # each word and its boundary take at least 2 symbols
        texts = [""] * n
        for k, model in enumerate(self._models):
            rows = np.flatnonzero(z == k)
            if not len(rows):
                continue
            shape = (len(rows), per_row)
            out = rng.random(shape) < model.oov
            cumulative = np.cumsum(model.freqs)
            picks = np.minimum(np.searchsorted(cumulative, rng.random(shape) * cumulative[-1],
                                               side="right"), len(model.words) - 1)
            lengths = np.minimum(rng.geometric(model.rho, size=shape), max(length, 1))
            # The letters of every out-of-vocabulary word, drawn at once from q.
            wanted = np.where(out, lengths, 0)
            letters = rng.choice(LETTERS, size=int(wanted.sum()), p=model.q)
            pool = "".join(ALPHABET[c] for c in letters)
            ends = np.cumsum(wanted.ravel()).reshape(shape)
            for i, row in enumerate(rows):
                parts = []
                for j in range(per_row):
                    if out[i, j]:
                        parts.append(pool[ends[i, j] - wanted[i, j]:ends[i, j]])
                    else:
                        parts.append(model.words[picks[i, j]])
                texts[row] = "".join(w + "_" for w in parts)[:length]
        if length == 0:
            return np.zeros((n, 0), dtype=np.uint8)
        return np.stack([to_symbols(t) for t in texts]) if n else np.zeros((0, length),
                                                                             dtype=np.uint8)

    # ------------------------------------------------------------- predictor
    def _log_predictive(self, seqs):
        """Every position at once: the partial word u_t before each position (a string per
        (row, t), its next-symbol table ``(K, 27)`` memoised per distinct u), and the
        languages' weights A_t, the log prior plus the log W of the words completed before t
        (a cumulative sum over the boundaries). log q(v | context) = logsumexp_l(A_t,l +
        table(u_t)[l, v]) - logsumexp_l(A_t,l + log S_l(u_t)); an impossible context
        (probability 0) gives every symbol -inf."""
        B, T = seqs.shape
        V, K = len(ALPHABET), len(self._models)
        if not B or not T:
            return np.zeros((B, T, V))
        index: dict[str, int] = {}
        where = np.empty((B, T), dtype=np.int64)
        for r, seq in enumerate(to_text(row) for row in seqs):
            partial = ""
            for t in range(T):
                where[r, t] = index.setdefault(partial, len(index))
                partial = "" if seq[t] == "_" else partial + seq[t]
        if len(self._memo_next) > MEMO_LIMIT:  # long training runs see many OOV partials
            self._memo_next.clear()
            self._memo_start.clear()
        partials = list(index)
        tables = np.stack([self.next_table(u) for u in partials])  # (U, K, V)
        starts = np.stack([self.log_start(u) for u in partials])  # (U, K)
        table = tables[where]  # (B, T, K, V)
        boundary = seqs == BOUNDARY
        completed = np.where(boundary[..., None], table[..., BOUNDARY], 0.0)  # (B, T, K)
        weights = self._log_prior + np.concatenate(
            [np.zeros((B, 1, K)), np.cumsum(completed, axis=1)[:, :-1]], axis=1)  # A_t
        norm = _lse(weights + starts[where], axis=-1)  # (B, T)
        with np.errstate(invalid="ignore"):
            out = _lse(weights[..., None] + table, axis=-2) - norm[..., None]
        return np.where(np.isfinite(norm)[..., None], out, -np.inf)

    # ------------------------------------------------------------- prompt classes
    def prompt_class(self, prompt: str):
        split = split_context(prompt)
        if split is None:
            return IMPOSSIBLE
        complete, partial = split
        weights = self._log_prior.copy()
        for word in complete:
            weights += self.log_word(word)
        if not np.isfinite(weights + self.log_start(partial)).any():
            return IMPOSSIBLE  # no language gives the prompt positive probability
        return tuple(sorted(complete)), partial

    def length_classes(self, length: int):
        if len(ALPHABET) ** length > MAX_ENUMERATED_PROMPTS:
            raise NotImplementedError(
                f"{self.kind}: the classes of prompts of length {length} are found by "
                f"enumerating its {len(ALPHABET)}^{length} prompts; at most "
                f"{MAX_ENUMERATED_PROMPTS} are enumerated")
        seen: dict = {}
        for symbols in itertools.product(ALPHABET, repeat=length):
            prompt = "".join(symbols)
            key = self.prompt_class(prompt)
            if key not in seen:
                seen[key] = prompt  # the lexicographically first member
        return list(seen), list(seen.values())

    def _sequence_parts(self, distinct: np.ndarray):
        """What `class_losses` needs of the distinct task sequences alone, whatever the
        prompts: each sequence's head (the letters before its first boundary, and whether it
        has one: ``heads`` {key: index}, ``head_keys``, ``head_of`` (D,)), its tail's log
        weight per language (D, K), the heads' out-of-vocabulary factor b(y, b) (Y, K), and
        every split u | y of a list word or prefix whose y is a head (``splits`` {u: [(head,
        language, log f)]}). Kept for the last sequences asked (the strategies ask again and
        again on one D_N, a few prompts at a time)."""
        key = (distinct.shape, distinct.tobytes())
        memo = self._memo_sequences
        if memo.get("key") == key:
            return memo["parts"]
        K = len(self._models)
        D = len(distinct)
        heads: dict[tuple[str, bool], int] = {}
        head_of = np.empty(D, dtype=np.int64)
        tail = np.zeros((D, K))
        for r, seq in enumerate(distinct):
            text = to_text(seq)
            cut = text.find("_")
            key_r = (text, False) if cut < 0 else (text[:cut], True)
            head_of[r] = heads.setdefault(key_r, len(heads))
            if cut >= 0:
                rest = split_context(text[cut + 1:])
                if rest is None:
                    tail[r] = -np.inf
                else:
                    words, partial = rest
                    tail[r] = sum((self.log_word(w) for w in words), np.zeros(K)) \
                        + self.log_start(partial)
        head_keys = list(heads)
        stay = np.array([m._log_stay for m in self._models])
        log_rho = np.array([m._log_rho for m in self._models])

        def letters(text):
            return np.array([sum(m._log_q[c] for c in text) for m in self._models])

        def stays(k):
            return np.zeros(K) if k == 0 else k * stay

        b = np.array([stays(len(y) - 1) if y else -stay for y, _ in head_keys]).reshape(-1, K)
        b = b + np.array([letters(y) + (log_rho if bound else 0.0)
                          for y, bound in head_keys]).reshape(-1, K)
        splits: dict[str, list[tuple[int, int, float]]] = {}
        for l, model in enumerate(self._models):
            for table, bound in ((model.frequency, True), (model.prefix, False)):
                for text, f in table.items():
                    for k in range(len(text) + 1):
                        u, y = text[:k], text[k:]
                        if (y, bound) in heads:
                            splits.setdefault(u, []).append((heads[(y, bound)], l,
                                                             math.log(f)))
        parts = heads, head_keys, head_of, tail, b, splits
        memo.clear()
        memo.update(key=key, parts=parts)
        return parts

    def class_losses(self, classes, seqs):
        """``-log P(x | s)`` for a prompt of each class on each sequence, ``(C, B)``.

        A class is (sorted complete words, partial word u). A task sequence x splits into
        its head y (the letters before its first boundary), whether it has a boundary b, and
        its tail (the words after the first boundary and the final partial word), which
        does not depend on the prompt: log P_l(s x) = A_l(s) + H_l(u, y, b) + tail_l(x), with
        A_l(s) = log pi_l + sum log W_l(w) over the class's words and H = log W(u y) (b) or
        log S(u y) (not b). H is the sum of its list term and its out-of-vocabulary term,
        and the latter factorises, log beta + a_l(u) + b_l(y, b) with a_l(u) = |u|
        log(1 - rho) + sum log q(u) and b_l(y, b) = (|y| - 1) log(1 - rho) + sum log q(y) +
        [b] log rho; the list term is nonzero only where u y is a list word or prefix, found
        by splitting each list entry in two (a few thousand entries), so the cost is one
        pass over (classes, distinct sequences, languages) arrays."""
        seqs = self.check_sequences(seqs)
        B, T = seqs.shape
        C, K = len(classes), len(self._models)
        out = np.full((C, B), np.inf)
        if not C or not B:
            return out
        distinct, inverse = np.unique(seqs, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        D = len(distinct)
        heads, head_keys, head_of, tail, b, splits = self._sequence_parts(distinct)
        # The classes: their words' weights A (C, K) and their partial words.
        live = [c for c, key in enumerate(classes) if key != IMPOSSIBLE]
        partials = sorted({classes[c][1] for c in live})
        u_index = {u: i for i, u in enumerate(partials)}
        u_of = np.array([u_index[classes[c][1]] for c in live], dtype=np.int64)
        A = np.array([self._log_prior + sum((self.log_word(w) for w in classes[c][0]),
                                            np.zeros(K)) for c in live]).reshape(-1, K)
        norm_u = np.array([self.log_start(u) for u in partials]).reshape(-1, K)  # log S(u)
        # The out-of-vocabulary factor a(u) (U, K) (b(y, b) is the sequences': `_sequence_parts`)
        # and log beta.
        stay = np.array([m._log_stay for m in self._models])
        log_oov = np.array([m._log_oov for m in self._models])
        log_list = np.array([m._log_list for m in self._models])

        def letters(text):
            return np.array([sum(m._log_q[c] for c in text) for m in self._models])

        def stays(k):
            return np.zeros(K) if k == 0 else k * stay

        a = np.array([stays(len(u)) + letters(u) for u in partials]).reshape(-1, K)
        # The list terms: every split u | y of every list word (heads with a boundary) and
        # every list prefix (heads without one) whose u is a class's partial word.
        entries: dict[tuple[int, int, int], float] = {
            (u_index[u], y, l): value for u in partials for y, l, value in splits.get(u, ())}
        listed = sorted({i for i, _, _ in entries} | ({u_index[""]} if "" in u_index else set()))
        row_of = np.full(len(partials), -1, dtype=np.int64)
        row_of[listed] = np.arange(len(listed))
        dense = np.full((len(listed), len(head_keys), K), -np.inf)  # log list term
        for (i, y, l), value in entries.items():
            dense[row_of[i], y, l] = log_list[l] + value
        with np.errstate(invalid="ignore"):
            H_listed = np.logaddexp(dense, log_oov + a[listed][:, None, :] + b[None, :, :])
        if "" in u_index and ("", True) in heads:  # an empty first word: impossible
            H_listed[row_of[u_index[""]], heads[("", True)]] = -np.inf
        seq_part = (b[head_of] + tail).T  # (K, D): the sequence's out-of-vocabulary factors
        tail_k = tail.T  # (K, D)
        H_by_head = H_listed[:, head_of, :].transpose(2, 0, 1)  # (K, U_listed, D)
        step = max(1, (1 << 21) // max(1, D))
        live = np.asarray(live, dtype=np.int64)
        for start in range(0, len(live), step):
            rows = np.arange(start, min(start + step, len(live)))
            u = u_of[rows]
            # (K, c, D), languages first so that the sum over them is elementwise.
            block = (A[rows] + log_oov + a[u]).T[:, :, None] + seq_part[:, None, :]
            has = np.flatnonzero(row_of[u] >= 0)
            if len(has):
                block[:, has] = (A[rows[has]].T[:, :, None] + H_by_head[:, row_of[u[has]]]
                                 + tail_k[:, None, :])
            norm = _lse(A[rows] + norm_u[u], axis=-1)  # (c,)
            top = block.max(axis=0)
            top = np.where(np.isfinite(top), top, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                total = np.log(np.exp(block - top[None]).sum(axis=0)) + top  # (c, D)
                loss = norm[:, None] - total
            out[live[rows]] = loss[:, inverse]
        return np.where(np.isnan(out), np.inf, out)

    # ------------------------------------------------------------- support
    def supports_task(self, task):
        """A task is in the meta-distribution when it is one language's word stream with the
        same list size and out-of-vocabulary share as one of this source's languages; a
        mixture of several languages is a distribution over members, not one of them."""
        if not isinstance(task, _WordSource):
            return False
        theirs = task.language_codes()
        return (len(theirs) == 1 and task.words == self.words and task.oov == self.oov
                and theirs[0] in self.language_codes())


def _count_streams(words, prefixes, length: int) -> int:
    """The number of strings ``w1_..._wm_u`` of exactly `length` symbols with every w_i in
    `words` and u empty or in `prefixes`: with f(t) the number of word sequences filling t
    symbols (a word and its boundary take |w| + 1), f(0) = 1 and f(t) = sum_w f(t - |w| - 1),
    the count is sum_j (prefixes of length j, 1 for j = 0) f(length - j). A string splits
    into its words and u in one way only, so these strings are distinct."""
    T = int(length)
    spans = [0] * (T + 2)
    for w in words:
        if len(w) + 1 <= T:
            spans[len(w) + 1] += 1
    fill = [1] + [0] * T
    for t in range(1, T + 1):
        fill[t] = sum(spans[k] * fill[t - k] for k in range(2, t + 1))
    heads = [1] + [0] * T
    for u in prefixes:
        if len(u) <= T:
            heads[len(u)] += 1
    return sum(heads[j] * fill[T - j] for j in range(T + 1))


def _streams(model: Language, length: int) -> dict[str, float]:
    """Every string of `_count_streams` over one language's list (oov 0), with its
    log-probability under the language: sum of log W of its words plus log S of its u."""
    T = int(length)
    by_span: dict[int, list[tuple[str, float]]] = {}
    for w in model.words:
        if len(w) + 1 <= T:
            by_span.setdefault(len(w) + 1, []).append((w + "_", model.log_word(w)))
    heads: dict[int, list[tuple[str, float]]] = {0: [("", 0.0)]}
    for u in model.prefix:
        if len(u) <= T:
            heads.setdefault(len(u), []).append((u, model.log_start(u)))
    fill: list[list[tuple[str, float]]] = [[("", 0.0)]] + [[] for _ in range(T)]
    for t in range(1, T + 1):
        fill[t] = [(s + w, a + b) for k, entries in by_span.items() if k <= t
                   for s, a in fill[t - k] for w, b in entries]
    return {s + u: a + b for j, ends in heads.items() for s, a in fill[T - j]
            for u, b in ends}


def _check_languages(languages, name) -> tuple[str, ...]:
    if isinstance(languages, (str, bytes)) or not isinstance(languages, Sequence):
        raise TypeError(f"{name}.languages must be a list of language codes, not "
                        f"{type(languages).__name__}")
    if not languages:
        raise ValueError(f"{name}.languages is empty, must hold at least one language")
    for language in languages:
        if not isinstance(language, str):
            raise TypeError(f"{name}.languages: {language!r} is not a language code")
    if len(set(languages)) != len(languages):
        raise ValueError(f"{name}.languages == {list(languages)} names a language twice")
    return tuple(languages)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class WordStream(_WordSource):
    """Words of one language, drawn independently by their frequency, each followed by the
    boundary ``_``, over the 27 symbols ``a``..``z`` (0..25) and ``_`` (26).

    Parameters: ``language`` (a wordfreq language code, e.g. ``en``), ``words`` (n, the list
    size: the first n of wordfreq's ``best`` list, normalised to a..z), ``oov`` (beta in
    [0, 1): the share of out-of-vocabulary words, of geometric length with mean the list's
    mean word length and letters from the list's letter frequencies mixed with 1% uniform).
    With ``oov`` 0 a prompt holding a word (or word prefix) outside the list is impossible
    (KL inf), as is any prompt with a leading ``_`` or a ``__``. ``wordfreq`` and ``lists``
    (the wordfreq version and a hash of the normalised lists) are filled in; a config may
    state them to insist on those lists. The exact Bayes predictor is the word model's
    next-symbol probability after the trailing partial word (a prefix table). Prompt
    classes: the multiset of complete words and the trailing partial word.
    """

    kind = "word_stream"
    language: str
    words: int = 1000
    oov: float = 0.01
    wordfreq: str | None = None
    lists: str | None = None

    def __post_init__(self):
        if not isinstance(self.language, str):
            raise TypeError(f"word_stream.language must be a language code, not "
                            f"{self.language!r}")
        self._setup((self.language,), (1.0,), self.words, self.oov, "word_stream")

    def language_codes(self) -> tuple[str, ...]:
        return (self.language,)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class LanguageMixture(_WordSource):
    """A language drawn once per sequence from ``languages`` with ``weights`` (uniform by
    default), then its word stream (`word_stream`, with the shared ``words`` and ``oov``).

    The exact Bayes predictor is the posterior over languages, given the context's complete
    words and trailing partial word, times each language's next-symbol probability. A task
    is in the meta-distribution when it is the word stream of one of ``languages`` with the
    same ``words`` and ``oov``.
    """

    kind = "language_mixture"
    languages: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    words: int = 1000
    oov: float = 0.01
    wordfreq: str | None = None
    lists: str | None = None

    def __post_init__(self):
        languages = _check_languages(self.languages, "language_mixture")
        weights = self.weights
        if weights is None:
            weights = tuple(1.0 / len(languages) for _ in languages)
        weights = validation.check_weights(weights, "language_mixture.weights", len(languages))
        object.__setattr__(self, "languages", languages)
        object.__setattr__(self, "weights", weights)
        self._setup(languages, weights, self.words, self.oov, "language_mixture")

    def language_codes(self) -> tuple[str, ...]:
        return self.languages
