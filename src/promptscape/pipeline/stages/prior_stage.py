"""Stage `probe_prior`: the pretraining prior read back from one predictor replicate of an
experiment (promptscape.prior), queried after count-class contexts only (no task data)."""

from __future__ import annotations

import logging

from promptscape import prior
from promptscape.study import tables
from promptscape.pipeline.stages.common import load_predictor
from promptscape.sources import build_source

log = logging.getLogger("promptscape")


def probe_prior(*, output: str, predictor: str, replicate: int, family: str,
                pretraining: dict, experiment: str, probe_length: int,
                model: str | None = None, device: str = "auto") -> None:
    """The prior_fit table of one (predictor, replicate): the Bayes predictor of
    `pretraining`, or a network from its checkpoint `model`, probed after the count classes
    of length up to `probe_length` (`config.probe_length`). A pretraining source that is not
    exchangeable is a `prior.PriorFitError` naming its kind, before any work; so is a
    network that conditions on fewer symbols than a probe needs."""
    prior.check_exchangeable(build_source(pretraining, where="pretraining"),
                             where=f"experiment {experiment}: pretraining")
    pred = load_predictor(family, pretraining, model, None, device)
    context = getattr(pred, "max_context", None)
    if context is not None and probe_length + 1 > context:
        raise prior.PriorFitError(
            f"experiment {experiment}: predictor {predictor} conditions on {context} symbols, "
            f"fewer than a probe of {probe_length} symbols and its next symbol")
    cols = prior.probe_prior(pred, pretraining, probe_length=probe_length)
    tables.write({"predictor": predictor, "replicate": replicate, "experiment": experiment,
                  **cols}, "prior_fit", output)
    chosen = [i for i, s in enumerate(cols["selected"]) if s]
    log.info("read back the prior of %s r%d (%s) after %d queries: %s with %d components, "
             "held-out error %.2e, W1 %.3g", predictor, replicate, experiment,
             cols["queries"][chosen[0]], cols["family"][chosen[0]],
             cols["components"][chosen[0]], cols["heldout_error"][chosen[0]],
             cols["w1"][chosen[0]])
