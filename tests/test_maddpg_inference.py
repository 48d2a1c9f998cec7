"""Inferred policies (training.infer_policies): the mechanics, on a real RLlib learner without Ray.

Agent i fits approximations mu^_i^j of the other agents' policies by maximum likelihood on
their replayed actions plus an entropy bonus, and its critic target uses their target
copies instead of the other agents' own target actors.
"""

from __future__ import annotations

import math

import pytest
import torch

from marl.algorithms.maddpg.learner import MADDPGTorchLearner, joint_train_batch, split_joint_columns
from marl.algorithms.maddpg.losses import approximation_loss
from marl.core.keys import INFERENCE_TERMS
from marl.errors import ConfigError
from tests.conftest import AGENTS, GAMMA, LOGITS_REG, build_maddpg_learner, hand_rows, tensor_batch


def test_approximation_loss_is_the_negative_log_likelihood_minus_the_entropy_bonus():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0], [5.0, -5.0]])
    actions = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([1.0, 1.0, 0.0])  # the last row: the agent did not act
    terms = approximation_loss(logits, actions, entropy_coeff=0.1, mask=mask)
    nll = (-math.log(0.75) - math.log(0.5)) / 2
    entropy = (-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) + math.log(2.0)) / 2
    assert terms["approx_nll"].item() == pytest.approx(nll, rel=1e-6)
    assert terms["approx_entropy"].item() == pytest.approx(entropy, rel=1e-6)
    assert terms["approx_loss"].item() == pytest.approx(nll - 0.1 * entropy, rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        approximation_loss(logits, actions[:, :1], entropy_coeff=0.1)


def test_each_module_approximates_exactly_the_agents_it_does_not_control():
    learner, _ = build_maddpg_learner("training.infer_policies=true")
    for agent in AGENTS:
        module = learner.module[agent].unwrapped()
        assert sorted(module.approx_policies) == sorted(a for a in AGENTS if a != agent)
        assert not module.infers(agent)
    plain, _ = build_maddpg_learner()
    assert not hasattr(plain.module["agent_0"].unwrapped(), "approx_policies")
    shared, _ = build_maddpg_learner("training.infer_policies=true", "policies.sharing=shared")
    assert not hasattr(shared.module["shared"].unwrapped(), "approx_policies")  # it controls every agent
    with pytest.raises(ConfigError, match="critic"):
        build_maddpg_learner("training.infer_policies=true", "training.critic=local")


def test_the_approximations_fit_the_observed_actions_of_a_fixed_batch():
    learner, _ = build_maddpg_learner("training.infer_policies=true")
    batch = joint_train_batch(hand_rows(), AGENTS)
    nll = []
    for _ in range(20):
        results = learner.update(batch=batch)
        assert set(INFERENCE_TERMS) <= set(results["agent_0"])
        nll.append(float(results["agent_0"]["approx_nll"]))
    # 8 rows of random one-hot actions: from ~log 5 (uniform) towards 0 (memorised).
    assert nll[0] == pytest.approx(math.log(5), abs=0.1)
    assert all(later < earlier for earlier, later in zip(nll, nll[1:]))
    assert nll[-1] < 0.5 * nll[0]


def target_q_of_agent_0(learner) -> float:
    module = learner.module["agent_0"].unwrapped()
    joint = split_joint_columns(tensor_batch(hand_rows()), AGENTS)
    torch.manual_seed(11)  # the same Gumbel noise every time
    with torch.no_grad():
        next_actions = learner.target_actions(joint, module)
        terms = MADDPGTorchLearner.agent_terms(module, "agent_0", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)
    return terms["target_q_mean"].item()


def _scramble(network: torch.nn.Module) -> None:
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn_like(parameter) * 3.0)


def test_the_critic_target_uses_the_approximations_not_the_other_agents_target_actors():
    learner, _ = build_maddpg_learner("training.infer_policies=true")
    before = target_q_of_agent_0(learner)
    for other in ("agent_1", "agent_2"):  # the true target policies of the others: ignored
        _scramble(learner.module[other].unwrapped().target_actor)
    assert target_q_of_agent_0(learner) == before
    _scramble(learner.module["agent_0"].unwrapped().target_approx_policies["agent_1"])  # agent_0's own estimate: used
    assert target_q_of_agent_0(learner) != before

    plain, _ = build_maddpg_learner()  # without inference the others' target actors are what counts
    before = target_q_of_agent_0(plain)
    _scramble(plain.module["agent_1"].unwrapped().target_actor)
    assert target_q_of_agent_0(plain) != before
