"""Running normalisation of value targets (MAPPO's "ValueNorm").

The critic predicts values in normalised units; GAE runs on de-normalised values
(Yu et al. 2022, implementation detail "value normalisation"). Statistics are a
debiased exponential moving average of the targets' mean and mean square, with
beta close to 1 so they follow the slowly drifting return scale.
"""

from __future__ import annotations

import torch
from torch import nn


class ValueNormalizer(nn.Module):
    """Debiased EMA mean/variance of value targets, kept as module buffers.

    Buffers (not parameters): they travel with the module's state to env runners
    and checkpoints, and no optimizer touches them.
    """

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5, var_floor: float = 1e-2):
        super().__init__()
        self.beta = beta
        self.epsilon = epsilon
        self.var_floor = var_floor
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debiasing_term", torch.zeros(()))

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / debias
        mean_sq = self.running_mean_sq / debias
        var = (mean_sq - mean**2).clamp(min=self.var_floor)
        return mean, var

    @torch.no_grad()
    def update(self, targets: torch.Tensor) -> None:
        """One EMA step towards this minibatch's mean and mean square.

        With several data-parallel learners (torch.distributed initialised) the sums are
        all-reduced first: each learner sees only its shard, and statistics that drifted
        apart would give the learners different losses for the same weights.
        """
        targets = targets.detach().to(self.running_mean.dtype)
        sums = torch.stack([targets.sum(), (targets**2).sum(), targets.new_tensor(float(targets.numel()))])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        # Tensor arithmetic only: no value leaves the device (a GPU learner would otherwise wait
        # for the GPU on every minibatch). No targets (count 0): the step weight is 0.
        total, total_sq, count = sums.to(torch.float64).unbind()
        step = torch.where(count > 0, count.new_tensor(1.0 - self.beta), count.new_tensor(0.0))
        keep = 1.0 - step
        count = count.clamp(min=1.0)
        for buffer, value in ((self.running_mean, total / count), (self.running_mean_sq, total_sq / count), (self.debiasing_term, 1.0)):
            buffer.copy_(buffer.to(torch.float64) * keep + value * step)

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_var()
        return (values - mean) / var.sqrt()

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_var()
        return values * var.sqrt() + mean
