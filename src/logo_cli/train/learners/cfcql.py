"""CFCQL learner (`--algo cfcql`, discrete actions): counterfactual CQL (Shao et al. 2023), MACQL's
learner with a per-agent conservative term weighted by each agent's distance from a behaviour policy β.
Loss and deviations from the reference code: algos/cfcql.py. β is fitted by behaviour cloning on the
real data before the first step of a fresh run (`--cfcql-bc-steps`) and kept in the checkpoint."""

from __future__ import annotations

import torch

from logo_cli.algos.cfcql import CfcqlConfig, CfcqlNets, cfcql_update
from logo_cli.data.transitions import Transitions
from logo_cli.train.learners.base import Options, Progress
from logo_cli.train.learners.macql import MacqlLearner, q_config


def fit_behaviour(nets: CfcqlNets, real: Transitions, opts: Options, progress: Progress | None) -> None:
    """β by BC on the real data. train_bc seeds its own init and minibatches, so the global torch RNG
    and the run's other generators are untouched and a run is repeatable."""
    from logo_cli.algos.bc import train_bc

    def bc_progress(step: int, total: int, info: dict) -> None:
        if progress is not None:
            progress("behaviour", step, total, info)

    bc = train_bc(real, steps=opts.cfcql_bc_steps, hidden=opts.hidden, layers=opts.layers, seed=opts.seed,
                  device=opts.device, progress=bc_progress)  # fmt: skip
    nets.set_behaviour(bc.net)


class CfcqlLearner(MacqlLearner):
    prepare_timer = "behaviour_s"
    nets: CfcqlNets
    cfg: CfcqlConfig

    def config(self, opts: Options) -> CfcqlConfig:
        return CfcqlConfig(**q_config(opts), temperature=opts.cfcql_temperature)

    def networks(self) -> CfcqlNets:
        return CfcqlNets(self.dims, self.opts.hidden, self.opts.layers)

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return cfcql_update(self.nets, self.opt, batch, self.cfg, step, self.gen)

    def prepare(self, real: Transitions, progress: Progress | None) -> None:
        fit_behaviour(self.nets, real, self.opts, progress)
