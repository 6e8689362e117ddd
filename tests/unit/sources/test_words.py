"""The word kinds (`word_stream`, `language_mixture`) against computations written here: the
distribution of the first T symbols by enumerating the generative process word by word
(list words, and out-of-vocabulary words of every length below T letter by letter), the
normalisation of the word lists from wordfreq's own functions, the sampler against word and
letter frequencies, impossible prompts and the named errors. Nothing here reuses the source's
prefix tables or its class losses."""

from __future__ import annotations

import itertools
import math
import unicodedata

import numpy as np
import pytest

from promptscape import validation
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source
from promptscape.sources import words as words_module
from promptscape.sources.words import ALPHABET, IMPOSSIBLE, to_symbols, to_text

Z = 5.0  # tolerance of the statistical tests, in standard errors


def make(**spec):
    spec.setdefault("kind", "language_mixture")
    return build_source(spec)


def first_symbols_distribution(src, T: int) -> dict[str, float]:
    """P(the stream starts with x) for every x of T symbols that has positive probability,
    by enumerating the generative process: a language, then words one at a time. A list
    word w has probability (1 - beta) f(w); an out-of-vocabulary word of k < T letters is
    enumerated letter by letter (beta rho (1 - rho)^(k - 1) prod q), and one of k >= T letters
    only shows its first T letters (beta (1 - rho)^(T - 1) prod q)."""
    total: dict[str, float] = {}
    for weight, model in zip(np.exp(src._log_prior), src.language_models()):
        beta, rho, q = model.oov, model.rho, model.q

        def words_of(T):
            """(text the word shows among T symbols, probability, whether it is cut)."""
            for w, f in zip(model.words, model.freqs):
                yield (w[:T], (1 - beta) * f, len(w) >= T)
            if beta == 0:
                return
            for k in range(1, T):
                for letters in itertools.product(range(26), repeat=k):
                    p = beta * rho * (1 - rho) ** (k - 1) * np.prod(q[list(letters)])
                    yield "".join(ALPHABET[c] for c in letters), p, False
            for letters in itertools.product(range(26), repeat=T):
                p = beta * (1 - rho) ** (T - 1) * np.prod(q[list(letters)])
                yield "".join(ALPHABET[c] for c in letters), p, True

        def streams(T):
            """{first T symbols: probability} of one language's stream."""
            out: dict[str, float] = {}
            if T == 0:
                return {"": 1.0}
            for text, p, cut in words_of(T):
                if cut:
                    out[text] = out.get(text, 0.0) + p
                    continue
                shown = text + "_"
                if len(shown) >= T:
                    out[shown[:T]] = out.get(shown[:T], 0.0) + p
                    continue
                for rest, p_rest in streams(T - len(shown)).items():
                    key = shown + rest
                    out[key] = out.get(key, 0.0) + p * p_rest
            return out

        for text, p in streams(T).items():
            total[text] = total.get(text, 0.0) + weight * p
    return total


def marginals(dist: dict[str, float], T: int) -> dict[int, dict[str, float]]:
    """{t: {first t symbols: probability}} for t = 0..T, by summing the T-symbol table."""
    out = {}
    for t in range(T + 1):
        table: dict[str, float] = {}
        for x, p in dist.items():
            table[x[:t]] = table.get(x[:t], 0.0) + p
        out[t] = table
    return out


SMALL = [
    dict(languages=["en", "de"], words=5, oov=0.0),
    dict(languages=["en", "fr"], words=4, oov=0.2),
    dict(kind="word_stream", language="sv", words=6, oov=0.1),
]


@pytest.mark.parametrize("spec", SMALL, ids=["beta0", "beta0.2", "stream"])
def test_bayes_predictive_matches_enumerated_word_sequences(spec):
    src = make(**spec)
    T = 4 if src.oov == 0 else 3
    dist = marginals(first_symbols_distribution(src, T), T)
    assert math.isclose(math.fsum(dist[T].values()), 1.0, abs_tol=1e-12)
    # Every possible text where there are few, else a random 400 of them; and impossible ones.
    texts = sorted(dist[T])
    if len(texts) > 400:
        texts = sorted(np.random.default_rng(0).choice(texts, 400, replace=False).tolist())
    texts += ["_" + texts[0][:T - 1], texts[0][:T - 2] + "__"]
    seqs = np.stack([to_symbols(x) for x in texts])
    q = np.exp(src.log_predictive(seqs))
    for row, x in enumerate(texts):
        for t in range(T):
            context = x[:t]
            p_context = dist[t].get(context, 0.0)
            for v, c in enumerate(ALPHABET):
                expected = dist[t + 1].get(context + c, 0.0) / p_context if p_context else 0.0
                assert q[row, t, v] == pytest.approx(expected, abs=1e-12, rel=1e-9), (x, t, c)
    np.testing.assert_allclose(np.exp(src.log_prob(seqs)), [dist[T].get(x, 0.0) for x in texts],
                               rtol=1e-9)


@pytest.mark.parametrize("spec", SMALL, ids=["beta0", "beta0.2", "stream"])
def test_prompt_losses_match_enumerated_word_sequences(spec):
    """The loss of a prompt on a task sequence, -log P(s x) / P(s), by class (the landscape's
    route) equals the ratio of enumerated probabilities; impossible ones are inf."""
    src = make(**spec)
    T = 4 if src.oov == 0 else 3
    dist = marginals(first_symbols_distribution(src, T), T)
    rng = np.random.default_rng(3)
    prompts = ["", "a", "_", "de", "i_", "the", "a__", "zq"] + [
        "".join(rng.choice(list(ALPHABET), size=int(rng.integers(1, 3)))) for _ in range(12)]
    prompts = [p for p in dict.fromkeys(prompts) if len(p) < T]
    predictor = BayesPredictor(src)
    for length in (1, 2):
        seq_texts = sorted(set(dist[length]) | {"_" * length, "q" * length})
        seqs = np.stack([to_symbols(x) for x in seq_texts])
        got = predictor.prompt_losses(prompts, seqs)
        for i, s in enumerate(prompts):
            if len(s) + length > T:
                continue
            p_s = dist[len(s)].get(s, 0.0)
            for j, x in enumerate(seq_texts):
                p_sx = dist[len(s) + length].get(s + x, 0.0)
                if p_s == 0 or p_sx == 0:
                    assert got[i, j] == np.inf, (s, x)
                else:
                    assert got[i, j] == pytest.approx(-math.log(p_sx / p_s), rel=1e-9,
                                                      abs=1e-12), (s, x)


def test_class_losses_equal_scoring_the_concatenation():
    """The class route and the symbol-by-symbol predictive on prompt + sequence agree,
    on longer sequences than the enumeration reaches (inf where impossible)."""
    src = make(languages=["en", "de", "fr"], words=30, oov=0.05)
    rng = np.random.default_rng(0)
    seqs = src.sample(40, 7, rng)
    seqs[0] = to_symbols("_a_bcde")
    seqs[1] = to_symbols("ab__cde")
    prompts = ["", "t", "the", "the_", "er_", "_", "qqq", "de_la_", "a__"]
    fast = BayesPredictor(src).prompt_losses(prompts, seqs)
    slow = _concatenated(src, prompts, seqs)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)
    # "_a_bcde" after a prompt that ends a word or is empty holds an empty word; "ab__cde"
    # always does.
    for i, prompt in enumerate(prompts):
        ends_word = prompt == "" or prompt.endswith("_")
        assert np.isinf(fast[i, 0]) == (ends_word or src.prompt_class(prompt) == IMPOSSIBLE)
    assert np.isinf(fast[:, 1]).all()


def _concatenated(src, prompts, seqs):
    """-sum_t log q(x_t | s, x_<t) from the source's predictive on s + x."""
    out = np.empty((len(prompts), len(seqs)))
    for i, s in enumerate(prompts):
        joined = np.concatenate([np.broadcast_to(to_symbols(s), (len(seqs), len(s))), seqs],
                                axis=1).astype(np.uint8)
        logq = src.log_predictive(joined)[:, len(s):]
        with np.errstate(invalid="ignore"):
            picked = -np.take_along_axis(logq, seqs[..., None].astype(np.int64), -1)[..., 0]
        out[i] = picked.sum(1)
    return out


def test_impossible_prompts_have_infinite_loss_and_share_one_class():
    strict = make(languages=["en", "de"], words=50, oov=0.0)
    loose = make(languages=["en", "de"], words=50, oov=0.01)
    seqs = strict.sample(30, 6, np.random.default_rng(1))
    for src in (strict, loose):
        for prompt in ("_", "_the", "the__", "a__b"):
            assert src.prompt_class(prompt) == IMPOSSIBLE
    assert strict.prompt_class("qxz") == IMPOSSIBLE  # no list holds the prefix
    assert strict.prompt_class("the_qxz_") == IMPOSSIBLE
    assert loose.prompt_class("qxz") == ((), "qxz")
    assert strict.prompt_class("the_und_der") == IMPOSSIBLE  # no one language holds both
    assert loose.prompt_class("the_und_der") == (("the", "und"), "der")
    assert strict.prompt_class("und_die_de") == (("die", "und"), "de")
    losses = BayesPredictor(strict).prompt_losses(["_", "qxz", "", "the_"], seqs)
    assert np.isinf(losses[:2]).all() and np.isfinite(losses[2]).all()
    # After an English word, a German sequence is impossible under lists without oov.
    model = strict.language_models()[0]
    english = np.array([all(w in model.frequency for w in to_text(x).split("_")[:-1])
                        and (to_text(x).split("_")[-1] in model.prefix
                             or not to_text(x).split("_")[-1]) for x in seqs])
    assert np.isinf(losses[3]).any() and np.isfinite(losses[3][english]).all()
    assert np.isfinite(BayesPredictor(loose).prompt_losses(["qxz"], seqs)).all()
    # The predictive after an impossible context gives every symbol probability 0.
    logq = strict.log_predictive(to_symbols("_ab")[None])
    assert np.isneginf(logq[0, 1:]).all() and np.isneginf(logq[0, 0, 26])


def test_prompts_of_one_class_act_alike():
    src = make(languages=["en", "de", "fr"], words=40, oov=0.01)
    seqs = src.sample(50, 6, np.random.default_rng(2))
    one = _concatenated(src, ["the_und_de"], seqs)
    other = _concatenated(src, ["und_the_de"], seqs)
    assert src.prompt_class("the_und_de") == src.prompt_class("und_the_de")
    np.testing.assert_allclose(one, other, rtol=1e-12)


def test_length_classes_cover_every_prompt():
    src = make(kind="word_stream", language="en", words=20, oov=0.0)
    classes, names = src.length_classes(2)
    assert len(names) == len(set(names)) == len(classes)
    every = {"".join(p) for p in itertools.product(ALPHABET, repeat=2)}
    assert {src.prompt_class(p) for p in every} == set(classes)
    for key, name in zip(classes, names):
        assert src.prompt_class(name) == key
        # The first member in the canonical order of symbols (a..z, then _).
        assert name == min((p for p in every if src.prompt_class(p) == key),
                           key=lambda p: tuple(to_symbols(p)))


# ------------------------------------------------------------------ word lists
def test_word_list_normalisation_follows_its_definition():
    import wordfreq

    names, freqs = words_module.word_list("fr", 200)
    top = wordfreq.top_n_list("fr", 200, wordlist="best")
    table = wordfreq.get_frequency_dict("fr", wordlist="best")
    expected: dict[str, float] = {}
    for word in top:
        plain = "".join(c for c in unicodedata.normalize("NFKD", word)
                        if not unicodedata.combining(c)).lower()
        if plain and set(plain) <= set("abcdefghijklmnopqrstuvwxyz"):
            expected[plain] = expected.get(plain, 0.0) + table[word]
    total = sum(expected.values())
    assert list(names) == list(expected)
    np.testing.assert_allclose(freqs, [f / total for f in expected.values()], rtol=1e-12)
    assert math.isclose(sum(freqs), 1.0, abs_tol=1e-12)
    assert "a" in names and "etre" in names  # 'à' and 'être' lose their accents


def test_identity_holds_the_wordfreq_version_and_a_hash_of_the_lists():
    a = make(languages=["en", "de"], words=30)
    b = make(languages=["en", "de"], words=31)
    spec = a.to_dict()
    assert spec["wordfreq"] == words_module.wordfreq_version()
    assert spec["lists"] != b.to_dict()["lists"]
    assert build_source(spec) == a
    with pytest.raises(validation.ConfigError, match=r"language_mixture\.lists == 'beef'"):
        build_source({**spec, "lists": "beef"})
    with pytest.raises(validation.ConfigError, match=r"word_stream\.wordfreq == '0\.1'"):
        build_source({"kind": "word_stream", "language": "en", "wordfreq": "0.1"})
    assert "lists" not in a.describe()


# ------------------------------------------------------------------ sampler
def test_sampler_first_words_follow_the_list_frequencies():
    src = make(kind="word_stream", language="en", words=8, oov=0.0)
    n = 20_000
    texts = [to_text(row) for row in src.sample(n, 12, np.random.default_rng(5))]
    names, freqs = words_module.word_list("en", 8)
    # The first word of each sequence (these words are shorter than 12 letters).
    drawn = [t.split("_")[0] for t in texts]
    assert set(drawn) <= set(names)
    counts = np.array([drawn.count(w) for w in names])
    m = len(drawn)
    se = np.sqrt(np.asarray(freqs) * (1 - np.asarray(freqs)) / m)
    assert np.all(np.abs(counts / m - freqs) <= Z * se)


def test_sampler_letters_and_lengths_follow_the_out_of_vocabulary_model():
    """With a large oov share, the first symbol's frequencies equal the exact predictive
    (list letters and q's letters), and out-of-vocabulary first words have geometric length."""
    src = make(kind="word_stream", language="de", words=10, oov=0.6)
    n = 20_000
    seqs = src.sample(n, 24, np.random.default_rng(6))
    first = np.bincount(seqs[:, 0], minlength=27) / n
    exact = np.exp(src.log_predictive(seqs[:1]))[0, 0]
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(first - exact) <= Z * se + 1e-12)
    model = src.language_models()[0]
    texts = [to_text(row) for row in seqs]
    oov_lengths = [len(t.split("_")[0]) for t in texts
                   if "_" in t and t.split("_")[0] not in model.frequency]
    mean = np.mean(oov_lengths)
    # Out-of-vocabulary words that happen to be list words are left out: a small bias, far
    # below the tolerance at these list sizes.
    assert abs(mean - model.mean_length) <= Z * np.std(oov_lengths) / np.sqrt(len(oov_lengths)) + 0.05
    letters = np.bincount(np.concatenate([to_symbols(t.split("_")[0]) for t in texts
                                          if "_" in t and t.split("_")[0] not in model.frequency
                                          and len(t.split("_")[0]) >= 4]), minlength=26)[:26]
    share = letters / letters.sum()
    se = np.sqrt(model.q * (1 - model.q) / letters.sum())
    assert np.all(np.abs(share - model.q) <= Z * se + 0.01)


def test_sample_is_deterministic_and_language_mixture_mixes():
    src = make(languages=["en", "de"], words=50, oov=0.01)
    a = src.sample(300, 10, np.random.default_rng(7))
    b = src.sample(300, 10, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.max() <= 26
    texts = [to_text(r) for r in a]
    assert not any(t.startswith("_") or "__" in t for t in texts)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("spec, pattern", [
    (dict(kind="word_stream", language="xx"), r"word_stream: language 'xx' is unknown"),
    (dict(languages=["en", "klingon"]), r"language 'klingon' is unknown"),
    (dict(kind="word_stream", language="en", words=0), r"word_stream\.words == 0, must be >= 1"),
    (dict(kind="word_stream", language="en", oov=1.0), r"word_stream\.oov == 1\.0, must be < 1"),
    (dict(kind="word_stream", language="en", oov=-0.1), r"word_stream\.oov == -0\.1"),
    (dict(kind="word_stream", language="ru", words=50), r"word_stream: language 'ru' with words == 50: no word"),
    (dict(languages=[]), r"language_mixture\.languages is empty"),
    (dict(languages=["en", "en"]), r"names a language twice"),
    (dict(languages=["en", "de"], weights=[0.2, 0.2]), r"language_mixture\.weights"),
])
def test_bad_word_sources_are_named_errors(spec, pattern):
    with pytest.raises(validation.ConfigError, match=pattern):
        make(**spec)


def test_tasks_in_the_meta_distribution():
    prior = make(languages=["en", "de", "sv"], words=50, oov=0.01)
    assert prior.supports_task(make(kind="word_stream", language="de", words=50, oov=0.01))
    assert not prior.supports_task(make(kind="word_stream", language="da", words=50, oov=0.01))
    assert not prior.supports_task(make(kind="word_stream", language="de", words=40, oov=0.01))
    assert not prior.supports_task(make(languages=["en", "de"], words=50, oov=0.01))


@pytest.mark.parametrize("spec", SMALL, ids=["beta0", "beta0.2", "stream"])
def test_symbol_marginals_match_enumerated_word_sequences(spec):
    """The per-position symbol law (edit families read it) against the enumerated first T
    symbols, averaged over the T positions."""
    src = make(**spec)
    T = 4 if src.oov == 0 else 3
    dist = first_symbols_distribution(src, T)
    expected = np.zeros(27)
    for text, p in dist.items():
        for c in text:
            expected[ALPHABET.index(c)] += p / T
    np.testing.assert_allclose(src.symbol_marginals(T), expected, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ the task's support
SUPPORTED = [
    dict(languages=["en", "de"], words=5, oov=0.0),
    dict(kind="word_stream", language="sv", words=6, oov=0.0),
]


@pytest.mark.parametrize("spec", SUPPORTED, ids=["mixture", "stream"])
@pytest.mark.parametrize("T", [0, 3, 6])
def test_support_is_the_enumerated_sequences_of_positive_probability(spec, T):
    src = make(**spec)
    dist = {x: p for x, p in first_symbols_distribution(src, T).items() if p > 0}
    seqs, log_p = src.support(T)
    assert src.support_size(T) == len(seqs) == len(dist)
    texts = [to_text(row) for row in seqs]
    assert sorted(texts) == sorted(dist)
    codes = [int("".join(f"{v:02d}" for v in row) or "0") for row in seqs]
    assert codes == sorted(codes)  # code order: symbol by symbol, _ after z
    np.testing.assert_allclose(np.exp(log_p), [dist[x] for x in texts], rtol=1e-9)
    assert math.isclose(math.fsum(np.exp(log_p)), 1.0, abs_tol=1e-12)


def test_support_is_stated_only_without_out_of_vocabulary_words():
    assert make(languages=["en", "fr"], words=4, oov=0.2).support_size(5) is None
    with pytest.raises(NotImplementedError, match="oov == 0"):
        make(languages=["en", "fr"], words=4, oov=0.2).support(5)
    # A mixture's support is the union of its languages' (which share "in" and "a"-words
    # only where their lists do): less than their sum where they share words.
    en, de = (make(kind="word_stream", language=c, words=40, oov=0.0) for c in ("en", "de"))
    both = make(languages=["en", "de"], words=40, oov=0.0)
    assert max(en.support_size(4), de.support_size(4)) < both.support_size(4) \
        < en.support_size(4) + de.support_size(4)
    assert both.support_size(4) == len(set(map(to_text, en.support(4)[0]))
                                       | set(map(to_text, de.support(4)[0])))


def test_a_word_task_s_exact_kl_matches_enumeration_and_the_evaluation_set_estimate():
    """With oov 0 and a small list the task's support over T symbols is enumerated, so the
    landscape's method is exact_enumeration; its KL equals the KL summed over the task's
    enumerated streams with the pretraining source's enumerated probabilities, and the
    evaluation set's estimate agrees within its standard error."""
    from promptscape import landscape
    pre = make(languages=["es", "fr"], words=5, oov=0.0)  # both lists hold de and la
    task = make(kind="word_stream", language="fr", words=5, oov=0.0)
    T = 6
    # Prompts of words of both languages, of French, of Spanish; partial words and
    # impossible prompts (inf).
    prompts = ["", "de_", "la_", "la_de_", "le_", "que_", "d", "x", "_", "de__"]
    pred = BayesPredictor(pre)
    budget = landscape.DEFAULT_ENUMERATION_BUDGET
    assert len(prompts) * 27 ** T > budget  # not all 27^T sequences: the support
    assert landscape.enumeration(task, T, len(prompts), budget) == "support"
    method = landscape.choose_method(pred, task, T, len(prompts), budget)
    assert method == "exact_enumeration"
    loss, loss_se, entropy = landscape.theoretical_losses(
        pred, prompts, task, T, method, num_prompts=len(prompts), budget=budget)
    kl = loss - entropy
    assert (loss_se == 0).all()
    # Brute force: the task's streams and the pretraining source's, enumerated here.
    p_task = first_symbols_distribution(task, T)
    p_pre = marginals(first_symbols_distribution(pre, T + 6), T + 6)
    assert entropy == pytest.approx(-sum(p * math.log(p) for p in p_task.values() if p > 0),
                                    rel=1e-12)
    assert landscape.task_entropy(task, T) == pytest.approx(entropy, rel=1e-12)
    for i, s in enumerate(prompts):
        p_s = p_pre[len(s)].get(s, 0.0)
        terms = [p * (math.log(p) - math.log(p_pre[len(s) + T].get(s + x, 0.0) / p_s))
                 if p_s > 0 and p_pre[len(s) + T].get(s + x, 0.0) > 0 else math.inf
                 for x, p in p_task.items() if p > 0]
        expected = math.fsum(terms)
        if math.isinf(expected):
            assert kl[i] == np.inf, s
        else:
            assert kl[i] == pytest.approx(expected, rel=1e-9, abs=1e-12), s
    assert np.isfinite(kl).sum() == 5 and len(np.unique(kl.round(9))) >= 4
    # The evaluation set's estimate, within its standard error.
    seqs, stratum, weight = landscape.draw_evaluation(task, T, 3000, np.random.default_rng(1))
    _, _, mc, mc_se, _ = landscape.monte_carlo_kl(pred.prompt_losses(prompts, seqs),
                                                  task.log_prob(seqs), weight, stratum)
    finite = np.isfinite(kl)
    np.testing.assert_array_equal(np.isinf(mc), ~finite)
    assert (mc_se[finite] > 0).all()
    # (le_ says French for certain: KL 0, its estimate 0 up to rounding, se about 0.)
    assert (np.abs(mc[finite] - kl[finite]) <= Z * mc_se[finite] + 1e-12).all()
    # P times the support's size must fit the budget, else the evaluation set.
    size = task.support_size(T)
    assert landscape.enumeration(task, T, len(prompts), len(prompts) * size) == "support"
    assert landscape.enumeration(task, T, len(prompts), len(prompts) * size - 1) is None
    assert landscape.choose_method(pred, task, T, len(prompts), len(prompts) * size - 1) \
        == "monte_carlo"
