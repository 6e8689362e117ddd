"""Prompt-search strategies, scored against the exhaustive ground truth.

A strategy searches the prompts of length 0..L_max over V symbols for the least empirical
loss L_N(s) on one dataset D_N. It sees only an evaluation function (`Evaluator`: prompt to
L_N), the vocabulary size and L_max, and a random generator seeded from (task, T, N, seed,
strategy); `gradient` also gets a function giving the gradient of L_N with respect to the
one-hot prompt tokens (networks only). A *budget* counts evaluations: distinct prompts whose
L_N was computed (a repeat is free and not counted) and gradient computations (one each).

Each strategy runs once per dataset up to the largest budget it is given; the `Evaluator`
keeps the order of its evaluations, so the best prompt within every smaller budget is read
off the same run (budgets are nested). "Best" uses the exhaustive search's tie rule
(`search.choose`): the least L_N, ties within a relative 1e-12 to the first prompt in
canonical order (shorter, then lexicographic), so `exhaustive` returns exactly s_hat.

A strategy stops when the budget is spent (the evaluator raises `BudgetSpent`), when every
prompt has been evaluated, or when its own procedure ends (a step limit guards the
stochastic ones, which may revisit prompts for free).

The registry is `STRATEGIES` (`Strategy`: name, description, its settings declared with
their defaults and checks (`promptscape.settings`, shared with the tuners), checked in one
place, `Strategy.validate`; search function); `parse` reads the config keys ``strategies``
and ``strategy_budgets``
into a `Plan`, naming every error by its key. Every strategy accepts ``max_budget`` (no
limit by default): budgets above it are not run for it (``gradient: {max_budget: 1000}``
keeps the costly gradient runs short on a CPU).

Members (docs/science.md, "Search strategies"):

``exhaustive``
    Every prompt in canonical order, once, at the budget of all prompts.
``random``
    Uniform over all prompts of length 0..L_max, without replacement.
``beam``
    From the empty prompt, extend every prompt of the beam by one symbol at the end and keep
    the ``width`` best; after L_max levels, double the width and search again (repeats are
    free), so that it uses any budget and ends as exhaustive search.
``hill_climb``
    Steepest descent over the neighbourhood (`neighbours`: one symbol changed, inserted or
    deleted), from a random start (a uniform length, then uniform symbols; redrawn while it
    has been evaluated, then uniform among the prompts not evaluated: `fresh_start`); at a
    local optimum it restarts from a new one.
``annealing``
    Simulated annealing over the same neighbourhood: a random edit (`random_neighbour`) is accepted
    with probability min(1, exp(-delta / temperature)); the temperature falls geometrically
    from ``initial_temperature`` to ``final_temperature`` (nats) as the budget is used.
``evolutionary``
    A (mu + lambda) evolutionary search: ``population`` prompts; each generation makes as
    many children by binary-tournament parents, one-point crossover (with probability
    ``crossover``: the first parent's head and the second's tail, cut at independent
    points, truncated to L_max) and a random edit (with probability
    ``mutation``); the best ``population`` distinct prompts of parents and children survive.
``gradient``
    Greedy coordinate gradient (GCG; Zou et al. 2023): from a random non-empty start, the
    gradient of L_N with respect to the one-hot prompt tokens ranks the ``top_k`` most
    promising replacement symbols per position; ``candidates`` of those single-symbol swaps,
    drawn uniformly, are evaluated exactly and the best is taken if it improves; after
    ``patience`` steps without improvement it restarts. Each gradient computation counts as
    one evaluation; a prompt's gradient is computed once a run (a repeat, like a repeated
    prompt, is free). Where ``top_k`` keeps every swap (``top_k >= V - 1``: always over two
    symbols) the gradient cannot change the candidates: it is charged but not computed.
    Bayes predictors have no gradient: the workflow skips it for them.
``surrogate``
    The pretraining prior read back from the predictor (`promptscape.prior`, the
    `prior_fit` artifact) stands in for it: every prompt is ranked by its L_N on the same
    D_N under the exact Bayes predictor of the fitted prior (`guide`), and the first
    minimum is returned. It never evaluates a prompt on the predictor itself; its cost is
    the probe's queries (next-symbol distributions after count-class contexts), which are
    its one budget (`Plan.probe_queries`) and its `evaluations`.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from collections.abc import Callable

import numpy as np

from promptscape import prompts as prompts_lib
from promptscape import settings as settings_lib
from promptscape.search import TIE_RELATIVE_TOLERANCE
from promptscape.settings import Setting
from promptscape.validation import ConfigError


class BudgetSpent(Exception):
    """Raised by the evaluator when a new evaluation would exceed the budget."""


class LossCache:
    """L_N of one dataset D_N on demand: `compute` (a list of prompts to their L_N, ``(n,)``)
    is called once per batch of prompts not computed before, and every value is kept by
    canonical index, so a revisit (by the same strategy or another on the same D_N) costs
    nothing. The strategies' path where the prompts cannot be tabulated (more than the
    landscape's L_max: 27^6 prompts of length 6); `computed` counts the prompts computed."""

    def __init__(self, compute: Callable[[list[str]], np.ndarray], vocab_size: int):
        self.compute = compute
        self.vocab_size = int(vocab_size)
        self.values: dict[int, float] = {}

    @property
    def computed(self) -> int:
        return len(self.values)

    def get(self, idx) -> np.ndarray:
        """L_N of the prompts of canonical indices `idx`, computing the missing ones in one
        batch (each once, in order of first appearance)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        missing = list(dict.fromkeys(i for i in idx.tolist() if i not in self.values))
        if missing:
            prompts = [prompts_lib.prompt_at(i, self.vocab_size) for i in missing]
            losses = np.asarray(self.compute(prompts), dtype=np.float64).reshape(-1)
            if len(losses) != len(missing):
                raise ValueError(f"{len(losses)} losses computed for {len(missing)} prompts")
            self.values.update(zip(missing, losses.tolist()))
        return np.fromiter((self.values[i] for i in idx.tolist()), dtype=np.float64,
                           count=len(idx))


# On demand, a strategy that draws among all prompts (random search, a restart's fallback)
# lists them, as the table does, where they number at most this many (so that the on-demand
# path makes the same draws as the tabulated one), and draws by rejection beyond.
LISTED_PROMPTS = 1 << 22


class Evaluator:
    """L_N by prompt, counting distinct prompts (and gradient computations) against a budget.

    `losses` ``(P,)`` holds L_N of every prompt in canonical order (the exhaustive table the
    strategy is scored against; the strategy reads it only through this object, paying for
    each prompt it has not seen). Or, where the prompts are too many to tabulate, `cache`
    (a `LossCache`) computes L_N of the prompts the strategy visits, in batches, on demand;
    the strategy does the same either way (`losses` None). `trail` lists the evaluations in
    order: a prompt's
    canonical index, or -1 for a gradient computation; `parents` beside it, the canonical
    index of the prompt each evaluation was proposed from (-1 where there is none: a start
    or restart, a prompt of exhaustive or random search, a gradient computation). The
    strategies name the parent when they evaluate (`parent=`); it is recorded only, never
    read, so it changes nothing a strategy does (the `strategy_steps` artifact).
    """

    def __init__(self, losses: np.ndarray | None, vocab_size: int, max_length: int,
                 budget: int, cache: LossCache | None = None):
        self.vocab_size = int(vocab_size)
        self.max_length = int(max_length)
        self.num_prompts = prompts_lib.num_prompts(max_length, vocab_size)
        if (losses is None) == (cache is None):
            raise ValueError("an Evaluator takes a table of losses or a LossCache, not both")
        self.cache = cache
        if losses is not None:
            self.losses = np.asarray(losses, dtype=np.float64)
            if len(self.losses) != self.num_prompts:
                raise ValueError(f"{len(self.losses)} losses for {self.num_prompts} prompts")
            self.seen = np.zeros(self.num_prompts, dtype=bool)
        else:
            self.losses = None
            self._seen: set[int] = set()
        self.budget = int(budget)
        self.trail: list[int] = []
        self.parents: list[int] = []
        self.prompts_seen = 0
        # Prompts shorter than each length: the canonical index of its first prompt.
        self._offsets = [prompts_lib.num_prompts(n - 1, vocab_size) if n else 0
                         for n in range(self.max_length + 1)]

    @property
    def used(self) -> int:
        return len(self.trail)

    @property
    def exhausted(self) -> bool:
        """Every prompt evaluated: nothing is left to find."""
        return self.prompts_seen == self.num_prompts

    def index(self, prompt: str) -> int:
        return prompts_lib.prompt_index(prompt, self.vocab_size)

    def is_seen(self, i: int) -> bool:
        return bool(self.seen[i]) if self.losses is not None else int(i) in self._seen

    def values(self, idx) -> np.ndarray:
        """L_N of the prompts of canonical indices `idx` (on demand: computed where new)."""
        if self.losses is not None:
            return self.losses[idx]
        return self.cache.get(idx)

    def _mark(self, idx) -> None:
        if self.losses is not None:
            self.seen[idx] = True
        else:
            self._seen.update(np.asarray(idx, dtype=np.int64).reshape(-1).tolist())

    def __call__(self, prompt: str, parent: str | None = None) -> float:
        """L_N(prompt); a prompt not seen before costs one evaluation. `parent`: the prompt
        it was proposed from, if any (recorded only)."""
        i = self.index(prompt)
        if self.is_seen(i):
            return float(self.values([i])[0])
        return self.at(i, -1 if parent is None else self.index(parent))

    def at(self, i: int, parent: int = -1) -> float:
        if not self.is_seen(i):
            if self.used >= self.budget:
                raise BudgetSpent
            self._mark(i)
            self.prompts_seen += 1
            self.trail.append(int(i))
            self.parents.append(int(parent))
        return float(self.values([i])[0])

    def many(self, prompts: list[str], parent: str | list | None = None) -> np.ndarray:
        """L_N of each prompt, in order; raises `BudgetSpent` at the first that does not fit
        (the ones before it are evaluated and kept in the trail). Vectorised: the same as
        calling the evaluator on each in turn. `parent`: the prompt they were all proposed
        from, or a list of each one's (None where it has none); recorded only."""
        V = self.vocab_size
        offsets = self._offsets
        idx = np.fromiter((offsets[len(p)] + prompts_lib.prompt_value(p, V) for p in prompts),
                          dtype=np.int64, count=len(prompts))
        return self.many_at(idx, parent)

    def many_at(self, idx: np.ndarray, parent: str | list | None = None) -> np.ndarray:
        """`many` of the prompts of canonical indices `idx` ``(n,)`` int64."""
        idx = np.asarray(idx, dtype=np.int64)
        if self.losses is not None:
            fresh = np.flatnonzero(~self.seen[idx])
        else:
            fresh = np.flatnonzero([i not in self._seen for i in idx.tolist()])
        if len(fresh):
            _, first = np.unique(idx[fresh], return_index=True)
            fresh = fresh[np.sort(first)]  # each new prompt once, in order of appearance
            room = self.budget - self.used
            take = idx[fresh[:room]]
            self._mark(take)
            self.prompts_seen += len(take)
            self.trail.extend(take.tolist())
            self.parents.extend(self._parent_indices(parent, fresh[:room]))
            if len(fresh) > room:
                raise BudgetSpent
        return self.values(idx)

    def _parent_indices(self, parent, positions: np.ndarray) -> list[int]:
        if parent is None:
            return [-1] * len(positions)
        if isinstance(parent, str):
            return [self.index(parent)] * len(positions)
        return [-1 if parent[k] is None else self.index(parent[k]) for k in positions]

    def charge(self) -> None:
        """One evaluation that is not a prompt's L_N (a gradient computation)."""
        if self.used >= self.budget:
            raise BudgetSpent
        self.trail.append(-1)
        self.parents.append(-1)

    def best_within(self, budget: int) -> tuple[int, int]:
        """(canonical index of the best prompt among the first `budget` evaluations, the
        evaluations used), by the exhaustive search's tie rule."""
        trail = np.asarray(self.trail[:budget], dtype=np.int64)
        found = np.sort(trail[trail >= 0])
        if not len(found):
            raise ValueError(f"no prompt evaluated within a budget of {budget}")
        return int(found[first_minimum(self.values(found))]), int(len(trail))

    def unseen(self, first: int) -> np.ndarray:
        """Canonical indices, less `first`, of the prompts from index `first` on not yet
        evaluated, in order (the on-demand path lists them only up to `LISTED_PROMPTS`)."""
        if self.losses is not None:
            return np.flatnonzero(~self.seen[first:])
        mask = np.ones(self.num_prompts - first, dtype=bool)
        mine = np.fromiter((i - first for i in self._seen if i >= first), dtype=np.int64)
        mask[mine] = False
        return np.flatnonzero(mask)

    def listed(self, first: int = 0) -> bool:
        """Whether the prompts from index `first` on are listed when drawn among (always
        from a table; on demand up to `LISTED_PROMPTS`), else drawn by rejection."""
        return self.losses is not None or self.num_prompts - first <= LISTED_PROMPTS


def first_minimum(losses: np.ndarray) -> int:
    """Position of the first value within `search.TIE_RELATIVE_TOLERANCE` of the least."""
    least = losses.min()
    return int(np.argmax(losses <= least + TIE_RELATIVE_TOLERANCE * max(abs(least), 1e-300)))


def optimum_class(losses: np.ndarray) -> np.ndarray:
    """Which prompts attain the empirical minimum (within the tie tolerance)."""
    least = losses.min()
    return losses <= least + TIE_RELATIVE_TOLERANCE * max(abs(least), 1e-300)


# ------------------------------------------------------------------ moves on prompts
def random_prompt(rng: np.random.Generator, vocab_size: int, max_length: int,
                  min_length: int = 0) -> str:
    """A uniform length in min_length..L_max, then uniform symbols, written in the
    alphabet of V symbols (digits up to 10 symbols, a..z and _ for 27)."""
    length = int(rng.integers(min_length, max_length + 1))
    characters = prompts_lib.alphabet(vocab_size)
    return "".join(characters[v] for v in rng.integers(0, vocab_size, length))


def fresh_start(evaluate: "Evaluator", rng: np.random.Generator, vocab_size: int,
                max_length: int, min_length: int = 0, tries: int = 3) -> str:
    """A restart: `random_prompt`, redrawn (up to `tries` times) while it has been
    evaluated already, then uniform among the prompts of at least `min_length` symbols not
    yet evaluated, so that a restart late in a run does not climb a hill it has seen."""
    for _ in range(tries):
        prompt = random_prompt(rng, vocab_size, max_length, min_length)
        if not evaluate.is_seen(evaluate.index(prompt)):
            return prompt
    first = evaluate._offsets[min_length]
    if not evaluate.listed(first):
        # Too many prompts to list (on demand): uniform among the unseen by rejection.
        for _ in range(REJECTION_TRIES):
            i = int(rng.integers(first, evaluate.num_prompts))
            if not evaluate.is_seen(i):
                return prompts_lib.prompt_at(i, vocab_size)
        return prompt
    unseen = evaluate.unseen(first)
    if not len(unseen):
        return prompt
    return prompts_lib.prompt_at(first + int(rng.choice(unseen)), vocab_size)


# Draws a rejection sampler makes before it gives up (never, unless nearly every prompt of
# more than `LISTED_PROMPTS` has been evaluated).
REJECTION_TRIES = 10_000


def neighbours(prompt: str, vocab_size: int, max_length: int) -> list[str]:
    """Every prompt one edit away: a symbol changed, inserted (below L_max) or deleted;
    distinct, in a fixed order.

    >>> neighbours("01", 2, 2)
    ['11', '00', '1', '0']
    """
    digits = prompts_lib.alphabet(vocab_size)
    out = [prompt[:i] + v + prompt[i + 1:] for i in range(len(prompt))
           for v in digits if v != prompt[i]]
    if len(prompt) < max_length:
        out += [prompt[:i] + v + prompt[i:] for i in range(len(prompt) + 1) for v in digits]
    out += [prompt[:i] + prompt[i + 1:] for i in range(len(prompt))]
    return [p for p in dict.fromkeys(out) if p != prompt]


def random_neighbour(prompt: str, rng: np.random.Generator, vocab_size: int,
                     max_length: int) -> str:
    """One random one-symbol edit of `prompt`: each of its L (V - 1) changes, (L + 1) V
    insertions (below L_max) and L deletions equally likely (so a neighbour that two edits
    reach, such as an insertion beside an equal symbol, is proposed more often);
    never `prompt` itself. The proposal of `annealing` and `evolutionary`."""
    L, V = len(prompt), int(vocab_size)
    characters = prompts_lib.alphabet(V)
    changes, inserts = L * (V - 1), (L + 1) * V if L < max_length else 0
    k = int(rng.integers(changes + inserts + L))
    if k < changes:
        i, step = divmod(k, V - 1)
        symbol = (characters.index(prompt[i]) + 1 + step) % V
        return prompt[:i] + characters[symbol] + prompt[i + 1:]
    k -= changes
    if k < inserts:
        i, symbol = divmod(k, V)
        return prompt[:i] + characters[symbol] + prompt[i:]
    i = k - inserts
    return prompt[:i] + prompt[i + 1:]


def improves(a: float, b: float) -> bool:
    """a is less than b by more than the tie tolerance: the strategies' rule for a move
    that improves."""
    return a < b - TIE_RELATIVE_TOLERANCE * max(abs(b), 1e-300)


_better = improves


def _step_limit(evaluate: Evaluator) -> int:
    """Proposals a stochastic strategy may make: repeats are free, so a walk in a region
    it has seen could otherwise go on for ever."""
    return 2 * min(evaluate.budget, evaluate.num_prompts) + 100


# ------------------------------------------------------------------ the strategies
def exhaustive(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None):
    for i in range(evaluate.num_prompts):
        evaluate.at(i)


def random_search(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None):
    if evaluate.losses is not None:
        for i in rng.permutation(evaluate.num_prompts):
            evaluate.at(int(i))
        return
    # On demand, in batches (the same evaluations as one at a time: `Evaluator.many`).
    if evaluate.listed():
        order = rng.permutation(evaluate.num_prompts)
        for a in range(0, len(order), RANDOM_BATCH):
            evaluate.many_at(order[a:a + RANDOM_BATCH])
        return
    # Too many prompts to permute: uniform draws, a repeat free and skipped, which is
    # drawing without replacement.
    while not evaluate.exhausted:
        evaluate.many_at(rng.integers(evaluate.num_prompts, size=RANDOM_BATCH))


# Prompts random search evaluates at once on demand.
RANDOM_BATCH = 256


def beam(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None):
    digits = prompts_lib.alphabet(vocab_size)
    width = int(settings["width"])
    while not evaluate.exhausted:
        frontier = [""]
        evaluate("")
        for _ in range(max_length):
            children = [p + v for p in frontier for v in digits]
            losses = evaluate.many(children, [p for p in frontier for _ in digits])
            # Keep the `width` best, ties to canonical order (the children are generated
            # in canonical order, and a stable sort keeps it).
            order = np.argsort(losses, kind="stable")[:width]
            frontier = [children[i] for i in sorted(order)]
        width *= 2


def hill_climb(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None):
    for _ in range(_step_limit(evaluate)):
        if evaluate.exhausted:
            return
        current = fresh_start(evaluate, rng, vocab_size, max_length)
        loss = evaluate(current)
        while True:
            near = neighbours(current, vocab_size, max_length)
            if not near:
                break
            losses = evaluate.many(near, current)
            j = first_minimum(losses)
            if not _better(losses[j], loss):
                break  # a local optimum: restart
            current, loss = near[j], float(losses[j])


def annealing(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None):
    t0, t1 = float(settings["initial_temperature"]), float(settings["final_temperature"])
    span = min(evaluate.budget, evaluate.num_prompts)
    current = random_prompt(rng, vocab_size, max_length)
    loss = evaluate(current)
    for _ in range(_step_limit(evaluate)):
        if evaluate.exhausted:
            return
        proposal = random_neighbour(current, rng, vocab_size, max_length)
        new = evaluate(proposal, current)
        temperature = t0 * (t1 / t0) ** min(1.0, evaluate.used / span)
        if new <= loss or rng.random() < math.exp(-(new - loss) / temperature):
            current, loss = proposal, new


def evolutionary(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None):
    size = int(settings["population"])
    crossover, mutation = float(settings["crossover"]), float(settings["mutation"])
    population = list(dict.fromkeys(random_prompt(rng, vocab_size, max_length)
                                    for _ in range(size)))
    fitness = evaluate.many(population)
    for _ in range(_step_limit(evaluate) // size + 1):
        if evaluate.exhausted:
            return
        children, parents = [], []  # each child's first tournament parent (recorded only)
        for _ in range(size):
            a, b = (_tournament(population, fitness, rng) for _ in range(2))
            child = a
            if rng.random() < crossover:
                child = (a[:int(rng.integers(len(a) + 1))]
                         + b[int(rng.integers(len(b) + 1)):])[:max_length]
            if rng.random() < mutation:
                child = random_neighbour(child, rng, vocab_size, max_length)
            children.append(child)
            parents.append(a)
        pool = list(dict.fromkeys(population + children))
        first_parent = {}
        for child, parent in zip(population + children, [None] * len(population) + parents):
            first_parent.setdefault(child, parent)
        losses = evaluate.many(pool, [first_parent[p] for p in pool])  # parents: repeats, free
        keep = np.argsort(losses, kind="stable")[:size]
        population, fitness = [pool[i] for i in keep], losses[keep]


def _tournament(population, fitness, rng) -> str:
    i, j = rng.integers(len(population), size=2)
    return population[i] if fitness[i] <= fitness[j] else population[j]


def gradient_search(evaluate: Evaluator, vocab_size, max_length, rng, settings,
                    gradient: Callable[[str], np.ndarray] | None = None):
    if gradient is None:
        raise ValueError("the gradient strategy needs a differentiable predictor")
    if max_length == 0:
        return evaluate("")
    top_k = min(int(settings["top_k"]), vocab_size - 1)
    width, patience = int(settings["candidates"]), int(settings["patience"])
    # With top_k >= V - 1 (every binary prompt) every swap is kept whatever the gradient
    # says, so the candidates cannot depend on it: it is charged, as GCG pays for it, but
    # not computed, and the swaps are taken in canonical order (the same order the ranking
    # gives over two symbols, so results are those of computing it).
    informed = top_k < vocab_size - 1
    characters = prompts_lib.alphabet(vocab_size)
    grads: dict[str, np.ndarray | None] = {}  # a prompt's gradient: charged once a run
    for _ in range(_step_limit(evaluate)):
        if evaluate.exhausted:
            return
        current = fresh_start(evaluate, rng, vocab_size, max_length, min_length=1)
        loss, stale = evaluate(current), 0
        while stale < patience:
            if current not in grads:
                evaluate.charge()
                grads[current] = (np.asarray(gradient(current), dtype=np.float64)
                                  if informed else None)
            symbols = prompts_lib.to_array(current).tolist()
            if informed:
                grad = grads[current]  # (L, V)
                own = grad[np.arange(len(current)), symbols]
                # First-order change of L_N of each swap; the current symbol is no candidate.
                change = grad - own[:, None]
                change[np.arange(len(current)), symbols] = np.inf
                ranked = np.argsort(change, axis=1, kind="stable")[:, :top_k]  # (L, top_k)
                swaps = [(i, int(v)) for i in range(len(current)) for v in ranked[i]]
            else:
                swaps = [(i, v) for i in range(len(current)) for v in range(vocab_size)
                         if v != symbols[i]]
            picks = rng.choice(len(swaps), size=min(width, len(swaps)), replace=False)
            candidates = [current[:i] + characters[v] + current[i + 1:]
                          for i, v in (swaps[k] for k in sorted(picks))]
            losses = evaluate.many(candidates, current)
            j = first_minimum(losses)
            if _better(losses[j], loss):
                current, loss, stale = candidates[j], float(losses[j]), 0
            else:
                stale += 1


def surrogate(evaluate: Evaluator, vocab_size, max_length, rng, settings, gradient=None,
              guide=None) -> int:
    """The canonical index of the first prompt of least L_N under the surrogate predictor
    (`guide` ``(P,)``, canonical order); nothing is evaluated on the predictor."""
    if guide is None or len(guide) != evaluate.num_prompts:
        raise ValueError("surrogate needs the surrogate's L_N of every prompt (guide)")
    return first_minimum(np.asarray(guide, dtype=np.float64))


# Every strategy takes max_budget (no limit by default): budgets above it are not run for it.
COMMON_SETTINGS = {"max_budget": Setting(None, settings_lib.NULL_OR_POSITIVE_INTEGER)}
_TEMPERATURE = settings_lib.Check(settings_lib.POSITIVE.test, "a number > 0 (nats)")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One prompt-search strategy: the one owner of its settings, their defaults and their
    checks (`validate`, through `promptscape.settings`; the config schema only says a
    strategy's settings are a mapping)."""
    name: str
    doc: str
    # Its own settings (name -> `settings.Setting`: default and check), besides
    # `COMMON_SETTINGS`; an entry of the same name replaces the common one.
    settings: dict
    search: Callable
    needs_gradient: bool = False
    exhaustive: bool = False  # runs once, at the budget of all prompts
    # Ranks prompts by a surrogate predictor's L_N (`guide`): runs once, at the budget of
    # the probe queries that read the surrogate back (`Plan.probe_queries`).
    needs_prior: bool = False
    # Proposes prompts from a parent (edits, extensions, offspring): its steps are recorded
    # (`strategy_steps`). Exhaustive and random search draw every prompt without one.
    proposes: bool = True
    # Runs on L_N computed on demand (`LossCache`), beyond the prompts a table holds:
    # every strategy but those that need every prompt's L_N (exhaustive, surrogate).
    on_demand: bool = True
    # A check of its complete settings together (defaults filled in): raises a ConfigError
    # naming the key given as its second argument.
    check: Callable[[dict, str], None] | None = None

    @property
    def declared(self) -> dict:
        """Every setting it takes: `COMMON_SETTINGS` and its own (name -> `Setting`)."""
        return {**COMMON_SETTINGS, **self.settings}

    @property
    def defaults(self) -> dict:
        """Every setting it takes, with its default."""
        return settings_lib.defaults(self.declared)

    def validate(self, given: dict | None, key: str) -> dict:
        """The settings `given` at config key `key` (its entry in experiments.<name>.strategies),
        checked (`settings.validate`, then its own `check` of them together): a ConfigError
        naming the key and setting for one it does not take or a value out of range."""
        given = settings_lib.validate(given, self.declared, key, self.name)
        if self.check is not None:
            self.check({**self.defaults, **given}, key)
        return given


def _check_annealing(settings: dict, key: str) -> None:
    if settings["final_temperature"] > settings["initial_temperature"]:
        raise ConfigError(f"{key}: final_temperature {settings['final_temperature']} is "
                          f"above initial_temperature {settings['initial_temperature']}")


_POSITIVE_INTEGER = settings_lib.POSITIVE_INTEGER
_PROBABILITY = settings_lib.PROBABILITY
EXHAUSTIVE = "exhaustive"
STRATEGIES = {s.name: s for s in [
    Strategy(EXHAUSTIVE, "every prompt once, in canonical order",
             {"max_budget": Setting(None, settings_lib.Check(
                 lambda v: v is None, "null: exhaustive search runs once, at the budget of "
                                      "all prompts"))},
             exhaustive, exhaustive=True, proposes=False, on_demand=False),
    Strategy("random", "uniform over all prompts, without replacement", {}, random_search,
             proposes=False),
    Strategy("beam", "extend symbol by symbol, keep the width best; widen and repeat",
             {"width": Setting(4, _POSITIVE_INTEGER)}, beam),
    Strategy("hill_climb", "steepest descent over one-symbol edits, random restarts", {},
             hill_climb),
    Strategy("annealing", "simulated annealing over one-symbol edits",
             {"initial_temperature": Setting(0.5, _TEMPERATURE),
              "final_temperature": Setting(0.001, _TEMPERATURE)}, annealing,
             check=_check_annealing),
    Strategy("evolutionary", "(mu + lambda) with crossover and mutation",
             {"population": Setting(16, _POSITIVE_INTEGER),
              "crossover": Setting(0.5, _PROBABILITY),
              "mutation": Setting(0.8, _PROBABILITY)}, evolutionary),
    Strategy("gradient", "greedy coordinate gradient (GCG) token swaps",
             {"top_k": Setting(4, _POSITIVE_INTEGER),
              "candidates": Setting(8, _POSITIVE_INTEGER),
              "patience": Setting(2, _POSITIVE_INTEGER)}, gradient_search,
             needs_gradient=True),
    Strategy("surrogate", "rank by L_N under the Bayes predictor of the read-back prior",
             {"max_budget": Setting(None, settings_lib.Check(
                 lambda v: v is None, "null: surrogate runs once, at the cost of its probe "
                                      "queries"))},
             surrogate, needs_prior=True, proposes=False, on_demand=False),
]}


@dataclasses.dataclass(frozen=True)
class Plan:
    """The strategies of an experiment, in config order, with their settings, and the
    budgets."""
    strategies: tuple[tuple[str, dict], ...] = ((EXHAUSTIVE, {}),)
    budgets: tuple[int, ...] = ()
    # Queries of the prior read back that a surrogate strategy ranks by (its one budget);
    # None where no strategy needs it.
    probe_queries: int | None = None
    # `strategy_max_prompt_length`: the longest prompt the strategies search, beyond the
    # experiment's max_prompt_length (whose prompts the landscape and the search stage
    # tabulate) where it is longer: L_N is then computed on demand. None: max_prompt_length.
    max_length: int | None = None

    def prompt_length(self, max_prompt_length: int) -> int:
        """The longest prompt the strategies search, in an experiment of `max_prompt_length`."""
        return max_prompt_length if self.max_length is None else self.max_length

    def on_demand(self, max_prompt_length: int) -> bool:
        """Whether the strategies search beyond the tabulated prompts (L_N on demand)."""
        return self.prompt_length(max_prompt_length) > max_prompt_length

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.strategies)

    def settings(self, name: str) -> dict:
        """The strategy's settings, every default filled in."""
        given = dict(self.strategies)[name]
        return {**STRATEGIES[name].defaults, **given}

    def budgets_of(self, name: str, num_prompts: int) -> tuple[int, ...]:
        """The budgets a strategy runs at: all prompts for exhaustive; the plan's budgets up
        to its max_budget otherwise."""
        if STRATEGIES[name].exhaustive:
            return (int(num_prompts),)
        if STRATEGIES[name].needs_prior:
            if self.probe_queries is None:
                raise ValueError(f"{name} runs at the cost of its probe queries, which the "
                                 "plan does not state (Plan.probe_queries)")
            return (int(self.probe_queries),)
        cap = self.settings(name)["max_budget"]
        return tuple(b for b in self.budgets if cap is None or b <= cap)

    @property
    def needs_gradient(self) -> bool:
        return any(STRATEGIES[name].needs_gradient for name in self.names)

    @property
    def needs_prior(self) -> bool:
        return any(STRATEGIES[name].needs_prior for name in self.names)

    def to_dict(self) -> dict:
        return {name: self.settings(name) for name in self.names}


def parse(strategies, budgets, where: str, max_length: int | None = None,
          max_prompt_length: int | None = None) -> Plan:
    """`experiments.<name>.strategies` (a list of names, or a mapping of names to settings),
    `strategy_budgets` (a list of positive integers, given exactly when a strategy
    besides exhaustive runs) and `strategy_max_prompt_length` (`max_length`: None, or at
    least the experiment's `max_prompt_length`) as a `Plan`, or a `ConfigError` naming the
    key."""
    key = f"{where}.strategies"
    if strategies is None:
        strategies = [EXHAUSTIVE]
    if isinstance(strategies, dict):
        items = list(strategies.items())
    else:
        items = [(name, None) for name in strategies]
        repeated = sorted({n for n in strategies if list(strategies).count(n) > 1})
        if repeated:
            raise ConfigError(f"{key} lists {', '.join(repeated)} more than once")
    if not items:
        raise ConfigError(f"{key} is empty; name at least one of {', '.join(STRATEGIES)}")
    out = []
    for name, settings in items:
        if name not in STRATEGIES:
            raise ConfigError(f"{key} names {name!r}, not a strategy; strategies: "
                              f"{', '.join(STRATEGIES)}")
        settings = STRATEGIES[name].validate(settings, f"{key}.{name}")
        out.append((name, settings))
    budget_key = f"{where}.strategy_budgets"
    budgets = [] if budgets is None else list(budgets)
    for b in budgets:
        if not _POSITIVE_INTEGER.test(b):
            raise ConfigError(f"{budget_key} holds {b!r}; budgets are integers >= 1")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"{budget_key} lists a budget more than once: {budgets}")
    searching = [n for n, _ in out if not STRATEGIES[n].exhaustive
                 and not STRATEGIES[n].needs_prior]
    if searching and not budgets:
        raise ConfigError(f"{key} names {', '.join(searching)}, which run at budgets: give "
                          f"{budget_key}")
    if budgets and not searching:
        others = ", ".join(n for n in STRATEGIES if not STRATEGIES[n].exhaustive)
        raise ConfigError(f"{budget_key} == {budgets}, but {key} runs exhaustive search "
                          f"only, which takes no budget: name the strategies to run at them "
                          f"({others}) or drop {budget_key}")
    length_key = f"{where}.strategy_max_prompt_length"
    if max_length is not None:
        if not (isinstance(max_length, int) and not isinstance(max_length, bool)
                and max_length >= 0):
            raise ConfigError(f"{length_key} == {max_length!r}, must be an integer >= 0")
        if max_prompt_length is not None and max_length < max_prompt_length:
            raise ConfigError(f"{length_key} == {max_length} is below max_prompt_length "
                              f"{max_prompt_length}: the strategies search at least the "
                              "prompts the landscape holds")
        if max_prompt_length is not None and max_length > max_prompt_length:
            whole = [n for n, _ in out if not STRATEGIES[n].on_demand]
            if whole:
                raise ConfigError(
                    f"{key} names {', '.join(whole)}, which needs every prompt's L_N, but "
                    f"{length_key} == {max_length} is beyond max_prompt_length "
                    f"{max_prompt_length}, whose prompts alone are tabulated: drop "
                    f"{', '.join(whole)} (exhaustive search up to max_prompt_length is the "
                    "search stage)")
            if not budgets:
                raise ConfigError(f"{length_key} == {max_length} is given, but no strategy "
                                  f"runs at budgets ({budget_key})")
    plan = Plan(tuple(out), tuple(sorted(budgets)), max_length=max_length)
    for name in searching:
        if not plan.budgets_of(name, 0):
            raise ConfigError(f"{key}.{name}.max_budget == {plan.settings(name)['max_budget']} "
                              f"is below every budget of {budget_key} {sorted(budgets)}")
    return plan


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """One strategy run up to its largest budget: `found` as `run` returns it, and the
    evaluations in order, ``trail`` (canonical index; -1 a gradient computation) and
    ``parents`` (the canonical index each was proposed from; -1 none), ``(E,)`` int64. The
    run at a smaller budget b is the first b evaluations (budgets are nested)."""

    found: list[tuple[int, int, int]]
    trail: np.ndarray
    parents: np.ndarray


def search_run(name: str, losses: np.ndarray | None, vocab_size: int, max_length: int,
               budgets: tuple[int, ...], rng: np.random.Generator, settings: dict,
               gradient: Callable[[str], np.ndarray] | None = None,
               guide: np.ndarray | None = None, cache: LossCache | None = None) -> Run:
    """`run`, with the run's trail of evaluations and their parents; `guide`: the
    surrogate's L_N of every prompt (canonical order), for a strategy that `needs_prior`;
    `cache`: L_N on demand (`LossCache`) in place of the table `losses` (None)."""
    strategy = STRATEGIES[name]
    if cache is not None and not strategy.on_demand:
        raise ValueError(f"{name} needs every prompt's L_N: it cannot run on demand")
    evaluate = Evaluator(losses, vocab_size, max_length, max(budgets), cache)
    if strategy.needs_prior:
        # Its cost is the probe's queries, its budget: it evaluates nothing here.
        chosen = strategy.search(evaluate, vocab_size, max_length, rng, settings,
                                 guide=guide)
        return Run([(b, chosen, b) for b in budgets], np.zeros(0, dtype=np.int64),
                   np.zeros(0, dtype=np.int64))
    try:
        strategy.search(evaluate, vocab_size, max_length, rng, settings, gradient)
    except BudgetSpent:
        pass
    return Run([(b, *evaluate.best_within(b)) for b in budgets],
               np.asarray(evaluate.trail, dtype=np.int64),
               np.asarray(evaluate.parents, dtype=np.int64))


def run(name: str, losses: np.ndarray, vocab_size: int, max_length: int,
        budgets: tuple[int, ...], rng: np.random.Generator, settings: dict,
        gradient: Callable[[str], np.ndarray] | None = None,
        guide: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """One run of strategy `name` on one dataset, whose prompts' L_N are `losses` (canonical
    order), up to the largest budget: ``[(budget, index of the best prompt within it,
    evaluations used), ...]`` in the order of `budgets`."""
    return search_run(name, losses, vocab_size, max_length, budgets, rng, settings,
                      gradient, guide).found


def expected_found_best(num_prompts: int, optimum_size: int, budget: int) -> float:
    """P(B prompts drawn uniformly without replacement include one of the m empirical
    optima): 1 - C(P - m, B) / C(P, B), exactly (integer binomials, one rounding).

    >>> expected_found_best(10, 1, 3)
    0.3
    >>> expected_found_best(10, 2, 9)
    1.0
    """
    P, m, B = int(num_prompts), int(optimum_size), min(int(budget), int(num_prompts))
    return float(1 - Fraction(math.comb(P - m, B), math.comb(P, B)))
