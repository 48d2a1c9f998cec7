"""MADDPG's learner on a hand-made joint batch (an RLlib Learner, no Ray cluster).

The pure maths is tested in test_maddpg_math.py; this checks the wiring in
MADDPGTorchLearner: which agents' networks and columns go into each term, in which
order the critic's input is concatenated, masking, that the actor loss leaves the
critic alone, and the Polyak step after an update. Expected values are written out
with plain torch from the paper's equations, not with the project's loss functions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl.algorithms.maddpg.learner import MADDPGTorchLearner, joint_train_batch, split_joint_columns
from marl.core.gumbel import gumbel_softmax
from marl.core.keys import BOOTSTRAP_DISCOUNT, MADDPG_TERMS
from marl.core.value_rescaling import rescale, unscale
from tests.conftest import AGENTS, GAMMA, LOGITS_REG, TAU, build_maddpg_learner, hand_rows, tensor_batch

@pytest.fixture()
def learner_and_config():
    return build_maddpg_learner()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum()


def expected_terms(learner, rows, agent: str) -> dict[str, float]:
    """The paper's terms for `agent`, written out; draws Gumbel noise in the learner's order."""
    modules = {a: learner.module[a].unwrapped() for a in AGENTS}
    column = {field: {a: torch.as_tensor(rows[a][field]) for a in AGENTS} for field in rows[AGENTS[0]]}
    me, mask = modules[agent], column["mask"][agent]
    # 1. every agent's target action on its next observation (zero where it did not act)
    next_actions = [
        gumbel_softmax(modules[a].target_actor(column["next_obs"][a]), hard=True, generator=None) * column["mask"][a][:, None]
        for a in AGENTS
    ]
    next_x = torch.cat([column["next_obs"][a] for a in AGENTS] + next_actions, dim=-1)
    y = column["rewards"][agent] + GAMMA * (1 - column["terminated"][agent]) * me.target_critic(next_x).squeeze(-1)
    x = torch.cat([column["obs"][a] for a in AGENTS] + [column["actions"][a] for a in AGENTS], dim=-1)
    q = me.critic(x).squeeze(-1)
    # 2. the agent's own fresh action replaces its replayed one
    logits = me.actor(column["obs"][agent])
    fresh = gumbel_softmax(logits, hard=True, generator=None)
    actions = [fresh if a == agent else column["actions"][a] for a in AGENTS]
    q_fresh = me.critic(torch.cat([column["obs"][a] for a in AGENTS] + actions, dim=-1)).squeeze(-1)
    reg = LOGITS_REG * masked_mean((logits**2).mean(-1), mask)
    return {
        "critic_loss": masked_mean((q - y) ** 2, mask).item(),
        "actor_loss": (-masked_mean(q_fresh, mask) + reg).item(),
        "q_mean": masked_mean(q, mask).item(),
        "target_q_mean": masked_mean(y, mask).item(),
        "logits_reg": reg.item(),
    }


@pytest.mark.parametrize("agent", AGENTS)
def test_loss_terms_match_the_papers_equations(learner_and_config, agent):
    learner, rllib_config = learner_and_config
    rows = hand_rows()
    with torch.no_grad():
        torch.manual_seed(7)
        loss = learner.compute_loss_for_module(module_id=agent, config=rllib_config, batch=tensor_batch(rows), fwd_out={})
        torch.manual_seed(7)  # the same Gumbel noise, drawn in the same order
        expected = expected_terms(learner, rows, agent)
    logged = {term: learner.metrics.peek((agent, term)) for term in MADDPG_TERMS}
    for term, value in expected.items():
        assert float(logged[term]) == pytest.approx(value, rel=1e-5, abs=1e-6), term
    assert loss.item() == pytest.approx(expected["critic_loss"] + expected["actor_loss"], rel=1e-5, abs=1e-6)
    assert expected["logits_reg"] > 0 and expected["critic_loss"] > 0


def test_a_masked_row_does_not_change_the_absent_agents_losses(learner_and_config):
    learner, _ = learner_and_config
    module = learner.module["agent_2"].unwrapped()
    rows = hand_rows()
    changed = hand_rows()
    changed["agent_2"]["rewards"][-1] = 1e6  # a row where agent_2 did not act

    def terms(r):
        joint = split_joint_columns(tensor_batch(r), AGENTS)
        torch.manual_seed(3)
        with torch.no_grad():
            next_actions = learner.target_actions(joint)
            return MADDPGTorchLearner.agent_terms(module, "agent_2", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)

    before, after = terms(rows), terms(changed)
    for name in before:
        assert after[name].item() == pytest.approx(before[name].item(), rel=1e-6), name


def _grads(network: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in network.parameters()]


def test_actor_loss_reaches_the_actor_only_and_critic_loss_the_critic_only(learner_and_config):
    learner, _ = learner_and_config
    module = learner.module["agent_1"].unwrapped()
    joint = split_joint_columns(tensor_batch(hand_rows()), AGENTS)
    networks = {name: getattr(module, name) for name in ("actor", "critic", "target_actor", "target_critic")}

    def backward(term: str) -> dict[str, list]:
        for network in networks.values():
            network.zero_grad(set_to_none=True)
        with torch.no_grad():
            next_actions = learner.target_actions(joint)
        terms = MADDPGTorchLearner.agent_terms(module, "agent_1", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)
        terms[term].backward()
        return {name: _grads(network) for name, network in networks.items()}

    actor_pass = backward("actor_loss")
    assert all(g is None for g in actor_pass["critic"]), "the actor loss pushed gradient into the critic"
    assert all(g is not None and g.abs().sum() > 0 for g in actor_pass["actor"])
    critic_pass = backward("critic_loss")
    assert all(g is None for g in critic_pass["actor"]), "the critic loss pushed gradient into the actor"
    assert all(g is not None and g.abs().sum() > 0 for g in critic_pass["critic"])
    for grads in (actor_pass, critic_pass):
        assert all(g is None for g in grads["target_actor"] + grads["target_critic"])
    # Nor does the critic loss reach the OTHER agents' (target) actors.
    for other in ("agent_0", "agent_2"):
        assert all(p.grad is None for p in learner.module[other].unwrapped().parameters())


def test_update_steps_both_optimizers_then_moves_targets_by_tau(learner_and_config):
    learner, _ = learner_and_config
    modules = {a: learner.module[a].unwrapped() for a in AGENTS}
    # Targets start as copies; make them differ so that the Polyak step is visible.
    with torch.no_grad():
        for module in modules.values():
            for target in (module.target_actor, module.target_critic):
                for parameter in target.parameters():
                    parameter.add_(0.5)
    before = {a: {name: _state(getattr(m, name)) for name in ("actor", "critic", "target_actor", "target_critic")} for a, m in modules.items()}

    results = learner.update(batch=joint_train_batch(hand_rows(), AGENTS))

    for agent, module in modules.items():
        for online, target in (("actor", "target_actor"), ("critic", "target_critic")):
            new_online = _state(getattr(module, online))
            assert any(not torch.equal(new_online[k], before[agent][online][k]) for k in new_online), f"{agent} {online} did not move"
            for key, value in _state(getattr(module, target)).items():
                expected = (1 - TAU) * before[agent][target][key] + TAU * new_online[key]
                torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        for term in MADDPG_TERMS:
            assert term in results[agent], f"{agent}/{term} not logged"


def test_local_critic_reads_only_the_agents_own_observation_and_action():
    learner, _ = build_maddpg_learner("training.critic=local")
    module = learner.module["agent_0"].unwrapped()
    assert module.critic[0].in_features == 18 + 5
    rows = hand_rows()
    changed = hand_rows()
    for other in ("agent_1", "agent_2"):
        changed[other]["obs"][:] = 9.0
        changed[other]["actions"][:] = 0.0
    q = [module.critic(module.critic_input("agent_0", *(split_joint_columns(tensor_batch(r), AGENTS)[f] for f in ("obs", "actions"))))
         for r in (rows, changed)]
    torch.testing.assert_close(q[0], q[1])


def _state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in network.state_dict().items()}


def test_greedy_target_actions_are_the_target_actors_argmax_without_noise():
    learner, _ = build_maddpg_learner("training.target_actions=greedy")
    joint = split_joint_columns(tensor_batch(hand_rows()), AGENTS)
    with torch.no_grad():
        torch.manual_seed(1)
        first = learner.target_actions(joint)
        torch.manual_seed(2)  # other Gumbel noise would change sampled targets
        second = learner.target_actions(joint)
        for agent in AGENTS:
            module = learner.module[agent].unwrapped()
            argmax = torch.nn.functional.one_hot(module.target_actor(joint["next_obs"][agent]).argmax(-1), 5).float()
            torch.testing.assert_close(first[agent], argmax * joint["mask"][agent][:, None])
            torch.testing.assert_close(first[agent], second[agent])


def test_sampled_target_actions_draw_new_noise():
    learner, _ = build_maddpg_learner()
    joint = split_joint_columns(tensor_batch(hand_rows()), AGENTS)
    with torch.no_grad():
        torch.manual_seed(1)
        first = learner.target_actions(joint)
        torch.manual_seed(2)
        second = learner.target_actions(joint)
    assert any(not torch.equal(first[a], second[a]) for a in AGENTS)


@pytest.mark.parametrize("gain", [0.01, 1.0])
def test_actor_output_gain_scales_the_last_layers_orthogonal_rows(gain):
    learner, _ = build_maddpg_learner(f"training.actor_output_gain={gain}")
    last = learner.module["agent_0"].unwrapped().actor[-1].weight  # (5 actions, 8 hidden): orthonormal rows x gain
    torch.testing.assert_close(last @ last.T, gain**2 * torch.eye(5), rtol=1e-4, atol=1e-6)


def test_twin_critics_target_the_smaller_target_estimate_and_train_both_critics():
    learner, _ = build_maddpg_learner("training.twin_critics=true")
    module = learner.module["agent_0"].unwrapped()
    joint = split_joint_columns(tensor_batch(hand_rows()), AGENTS)
    with torch.no_grad():  # the two target critics start from different weights
        next_actions = learner.target_actions(joint)
        terms = MADDPGTorchLearner.agent_terms(module, "agent_0", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)
        next_x = torch.cat([joint["next_obs"][a] for a in AGENTS] + [next_actions[a] for a in AGENTS], dim=-1)
        q1_next, q2_next = module.target_critic(next_x).squeeze(-1), module.target_twin_critic(next_x).squeeze(-1)
        assert (q1_next < q2_next).any() and (q2_next < q1_next).any(), "the test needs rows where each critic is the smaller"
        mask = joint["mask"]["agent_0"]
        y = joint["rewards"]["agent_0"] + GAMMA * (1 - joint["terminated"]["agent_0"]) * torch.minimum(q1_next, q2_next)
        x = torch.cat([joint["obs"][a] for a in AGENTS] + [joint["actions"][a] for a in AGENTS], dim=-1)
        expected = sum(masked_mean((critic(x).squeeze(-1) - y) ** 2, mask) for critic in (module.critic, module.twin_critic))
    assert terms["target_q_mean"].item() == pytest.approx(masked_mean(y, mask).item(), rel=1e-5)
    assert terms["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # Both critics share the critic optimizer; the twin and its target move like the first pair.
    critic_params = {id(p) for p in learner.get_optimizer("agent_0", "critic").param_groups[0]["params"]}
    assert {id(p) for p in module.twin_critic.parameters()} <= critic_params
    before = _state(module.target_twin_critic)
    learner.after_gradient_based_update(timesteps={})
    after = _state(module.target_twin_critic)
    twin = _state(module.twin_critic)
    for key in before:
        torch.testing.assert_close(after[key], (1 - TAU) * before[key] + TAU * twin[key])


def test_n_step_rows_bootstrap_with_their_own_discount():
    learner, _ = build_maddpg_learner("training.n_step=3")
    module = learner.module["agent_0"].unwrapped()
    rows = hand_rows()
    discount = np.array([GAMMA ** (1 + i % 3) for i in range(len(rows["agent_0"]["mask"]))], np.float32)
    for agent in AGENTS:
        rows[agent][BOOTSTRAP_DISCOUNT] = discount * rows[agent]["mask"]
    joint = split_joint_columns(tensor_batch(rows), AGENTS)
    assert BOOTSTRAP_DISCOUNT in joint
    with torch.no_grad():
        next_actions = learner.target_actions(joint)
        terms = MADDPGTorchLearner.agent_terms(module, "agent_0", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)
        next_x = torch.cat([joint["next_obs"][a] for a in AGENTS] + [next_actions[a] for a in AGENTS], dim=-1)
        next_q = module.target_critic(next_x).squeeze(-1)
        y = joint["rewards"]["agent_0"] + torch.as_tensor(discount) * (1 - joint["terminated"]["agent_0"]) * next_q
        one_step = joint["rewards"]["agent_0"] + GAMMA * (1 - joint["terminated"]["agent_0"]) * next_q
    mask = joint["mask"]["agent_0"]
    assert terms["target_q_mean"].item() == pytest.approx(masked_mean(y, mask).item(), rel=1e-5)
    assert masked_mean(y, mask).item() != pytest.approx(masked_mean(one_step, mask).item(), rel=1e-3)


@pytest.mark.parametrize("kind", ["sqrt", "symlog"])
def test_value_rescaling_regresses_h_of_the_backed_up_return(kind):
    learner, _ = build_maddpg_learner(f"training.value_rescaling={kind}")
    module = learner.module["agent_0"].unwrapped()
    joint = split_joint_columns(tensor_batch(hand_rows()), AGENTS)
    with torch.no_grad():
        next_actions = learner.target_actions(joint)
        terms = MADDPGTorchLearner.agent_terms(module, "agent_0", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)
        next_x = torch.cat([joint["next_obs"][a] for a in AGENTS] + [next_actions[a] for a in AGENTS], dim=-1)
        next_q = unscale(module.target_critic(next_x).squeeze(-1), kind)  # the critic's output is h(Q)
        y = joint["rewards"]["agent_0"] + GAMMA * (1 - joint["terminated"]["agent_0"]) * next_q
        x = torch.cat([joint["obs"][a] for a in AGENTS] + [joint["actions"][a] for a in AGENTS], dim=-1)
        h_q = module.critic(x).squeeze(-1)
    mask = joint["mask"]["agent_0"]
    assert terms["critic_loss"].item() == pytest.approx(masked_mean((h_q - rescale(y, kind)) ** 2, mask).item(), rel=1e-5)
    # metrics in return units
    assert terms["target_q_mean"].item() == pytest.approx(masked_mean(y, mask).item(), rel=1e-5)
    assert terms["q_mean"].item() == pytest.approx(masked_mean(unscale(h_q, kind), mask).item(), rel=1e-5)
    torch.testing.assert_close(module.q_value(x), unscale(h_q, kind))


def test_critic_hidden_sizes_the_critics_alone():
    learner, _ = build_maddpg_learner("training.critic_hidden=[16,12]", "training.twin_critics=true")
    module = learner.module["agent_0"].unwrapped()
    for critic in (module.critic, module.target_critic, module.twin_critic, module.target_twin_critic):
        assert [layer.out_features for layer in critic if isinstance(layer, torch.nn.Linear)] == [16, 12, 1]
    for actor in (module.actor, module.target_actor):  # model.hidden, [8]
        assert [layer.out_features for layer in actor if isinstance(layer, torch.nn.Linear)] == [8, 5]
