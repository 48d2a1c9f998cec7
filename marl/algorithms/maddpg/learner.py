"""MADDPG's learner on RLlib: every agent's critic and actor updated on the same joint rows.

The train batch (built by `joint_train_batch` from a `JointReplayBuffer` sample) is a
MultiAgentBatch with one SampleBatch per policy, each holding the WHOLE joint batch:
columns `<field>/<agent>` for every agent and field of replay.FIELDS (obs, actions,
rewards, next_obs, terminated, mask; and `subpolicy` with policy ensembles, where each
module gets its own rows: `joint_train_batch_per_module`). The critic target of any agent needs the target
actors of all agents, so the learner reads every module from inside each module's loss.
Per agent i of a module, on the same B rows:

    a'_j        = gumbel_softmax(mu'_j(o'_j))                      every agent j, no gradient
                  (`target_actions: greedy`: its noise-free action, one-hot argmax or softmax)
                  (an ensemble: the target of the sub-policy j acted with in that row)
    y_i         = r_i + gamma (1 - terminated_i) Q'_i(x', a'_1..a'_N)
                  (`twin_critics`: min(Q'_i, Q2'_i) of the two target critics, clipped double Q)
                  (`n_step`: r_i is the row's m-step discounted sum and gamma is gamma^m, its
                  `bootstrap_discount` column; `value_rescaling`: the critics output h(Q), and
                  y_i = h(r_i + gamma (1 - terminated_i) h^-1(Q'_i)) with Q_i read as h(Q_i))
    critic_loss = E_mask_i[(Q_i(x, a_1..a_N) - y_i)^2]   (+ the same for Q2_i, twin critics)
    actor_loss  = -E_mask_i[Q_i(x, a_1..a^_i..a_N)] + logits_reg E[logits_i^2],  a^_i = gumbel_softmax(mu_i(o_i))

With `infer_policies`, module i also fits approximations mu^_i^j of every other agent's
policy to that agent's replayed actions (`losses.approximation_loss`, logged as
approx_loss / approx_nll / approx_entropy) and a'_j in y_i comes from their target copies
mu^'_i^j, never from agent j's own networks.

RLlib's TorchLearner sums all losses and calls backward() once. The critic stays out
of the actor loss's gradient because that Q is computed with the critic's parameters
detached (`call_with_frozen_params`): the gradient reaches a^_i, hence mu_i, only. The
critic loss reaches no actor (replayed actions and target actions carry no gradient).
Actor and critic have separate Adam optimizers (lr_actor, lr_critic); RLlib clips each
gradient tensor to `grad_clip` (grad_clip_by="norm"). After each update every module's
targets move by Polyak averaging with `tau`.

Settings RLlib's AlgorithmConfig lacks (lr_actor, lr_critic, tau, logits_reg,
infer_entropy_coeff; the agents' joint order and which module controls each) are read from
the typed, frozen `LearnerSettings` (`marl.algorithms.common.learner_settings`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.annotations import override

from marl.algorithms.common import learner_settings
from marl.algorithms.maddpg.losses import (
    actor_loss,
    approximation_loss,
    call_with_frozen_params,
    critic_loss,
    critic_targets,
    polyak_update,
)
from marl.algorithms.maddpg.replay import FIELDS, OPTIONAL_FIELDS, Rows
from marl.core.keys import ACTOR_LOSS, APPROX_LOSS, BOOTSTRAP_DISCOUNT, CRITIC_LOSS, INFERENCE_TERMS, LOGITS_REG, MADDPG_TERMS, Q_MEAN, SUBPOLICY, TARGET_Q_MEAN
from marl.core.value_rescaling import rescale, unscale
from marl.rllib.metrics import log_terms
from marl.rllib.threads import limit_learner_threads


def joint_column(field: str, agent: str) -> str:
    """The train-batch column of one agent's field, e.g. `obs/agent_0`."""
    return f"{field}/{agent}"


def joint_train_batch(rows: Rows, module_ids: list[str]) -> MultiAgentBatch:
    """The learner's train batch: the joint rows, under every module id (see the module docstring).

    Every module's SampleBatch refers to the same numpy arrays (no copy in the driver).
    """
    return joint_train_batch_per_module(dict.fromkeys(module_ids, rows))


def joint_train_batch_per_module(rows_by_module: dict[str, Rows]) -> MultiAgentBatch:
    """The train batch when modules train on different joint rows (ensembles: each sub-policy its own)."""
    batches = {}
    for module_id, rows in rows_by_module.items():
        columns = {joint_column(field, agent): values for agent, fields in rows.items() for field, values in fields.items()}
        batches[module_id] = SampleBatch(columns)
    return MultiAgentBatch(batches, env_steps=max(len(batch) for batch in batches.values()))


def split_joint_columns(batch: Mapping[str, Any], agents: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """field -> agent -> tensor, from a module's train batch (the inverse of `joint_train_batch`)."""
    return {field: {agent: batch[joint_column(field, agent)] for agent in agents} for field in (*FIELDS, *OPTIONAL_FIELDS) if joint_column(field, agents[0]) in batch}


class MADDPGTorchLearner(TorchLearner):
    """Critic and actor losses per agent on the joint batch; Polyak targets after each update."""

    @override(TorchLearner)
    def build(self) -> None:
        limit_learner_threads(self.config)  # a remote learner's pools to its CPUs, before any torch work
        super().build()

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        module = self._module[module_id].unwrapped()
        training = learner_settings(config).training
        critics = [module.critic] + ([module.twin_critic] if module.has_twin_critic else [])
        networks = [("actor", [module.actor], training.lr_actor), ("critic", critics, training.lr_critic)]
        if hasattr(module, "approx_policies"):
            networks.append(("approx_policies", [module.approx_policies], training.lr_actor))
        for name, group, lr in networks:
            params = [param for network in group for param in self.get_parameters(network)]
            self.register_optimizer(
                module_id=module_id, optimizer_name=name, optimizer=torch.optim.Adam(params), params=params, lr_or_lr_schedule=lr
            )

    # -- the loss --------------------------------------------------------------------
    @override(TorchLearner)
    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        settings = learner_settings(config)
        module = self.module[module_id].unwrapped()
        joint = split_joint_columns(batch, settings.agents)
        with torch.no_grad():
            next_actions = self.target_actions(joint, module)
        per_agent = [
            self.agent_terms(module, agent, joint, next_actions, gamma=config.gamma, logits_reg=settings.training.logits_reg)
            for agent in module.agents
        ]
        # A module controlling several agents (parameter sharing) averages their terms.
        terms = {name: torch.stack([t[name] for t in per_agent]).mean() for name in per_agent[0]}
        loss = terms[CRITIC_LOSS] + terms[ACTOR_LOSS]
        logged = {name: terms[name].detach() for name in MADDPG_TERMS}
        if hasattr(module, "approx_policies"):
            inference = self.approximation_terms(module, joint, entropy_coeff=settings.training.infer_entropy_coeff)
            loss = loss + inference[APPROX_LOSS]
            logged.update({name: inference[name].detach() for name in INFERENCE_TERMS})
        log_terms(self.metrics, logged, key=module_id)
        return loss

    def target_actions(self, joint, module=None) -> dict[str, torch.Tensor]:
        """a'_j for every agent j, zero where j did not act: gumbel_softmax(mu'_j(o'_j)) (or its greedy
        action, `target_actions: greedy`), or, where `module` infers j's policy, the same of mu^'_j(o'_j),
        its own approximation."""
        settings = learner_settings(self.config)
        greedy = settings.training.target_actions == "greedy"
        actions = {}
        subpolicies = joint.get(SUBPOLICY, {})
        for agent in settings.agents:
            next_obs = joint["next_obs"][agent]
            if module is not None and module.infers(agent):
                vector = module.target_vector(module.target_approx_policies[agent](next_obs), greedy=greedy)
            else:
                owner = self.module[settings.policy_of[agent]].unwrapped()
                vector = owner.target_vector(owner.actor_logits(next_obs, subpolicies.get(agent), target=True), greedy=greedy)
            actions[agent] = vector * joint["mask"][agent].unsqueeze(-1)
        return actions

    @staticmethod
    def approximation_terms(module, joint, *, entropy_coeff: float) -> dict[str, torch.Tensor]:
        """The approximations' maximum-likelihood terms, averaged over the approximated agents."""
        per_agent = [
            approximation_loss(
                network(joint["obs"][agent]), joint["actions"][agent], entropy_coeff=entropy_coeff, mask=joint["mask"][agent]
            )
            for agent, network in module.approx_policies.items()
        ]
        return {name: torch.stack([t[name] for t in per_agent]).mean() for name in INFERENCE_TERMS}

    @staticmethod
    def agent_terms(module, agent: str, joint, next_actions, *, gamma: float, logits_reg: float) -> dict[str, torch.Tensor]:
        """Agent `agent`'s named loss terms on the joint rows (see the module docstring)."""
        observations, actions, mask = joint["obs"], joint["actions"], joint["mask"][agent]

        # With value rescaling the critics learn h(Q): targets go back to returns through h^-1 for
        # the Bellman backup and into h for the regression (identity without rescaling).
        scale = module.value_rescaling
        with torch.no_grad():
            next_x = module.critic_input(agent, joint["next_obs"], next_actions)
            next_q = module.target_critic(next_x).squeeze(-1)
            if module.has_twin_critic:  # clipped double Q: the smaller of the two target estimates
                next_q = torch.minimum(next_q, module.target_twin_critic(next_x).squeeze(-1))
            # n-step rows carry their own gamma^m (training.n_step); one-step rows bootstrap with gamma.
            discount = joint[BOOTSTRAP_DISCOUNT][agent] if BOOTSTRAP_DISCOUNT in joint else gamma
            target_returns = critic_targets(joint["rewards"][agent], joint["terminated"][agent], unscale(next_q, scale), discount)
            targets = rescale(target_returns, scale)
        x = module.critic_input(agent, observations, actions)
        q = module.critic(x).squeeze(-1)
        td_loss = critic_loss(q, targets, mask=mask)
        if module.has_twin_critic:
            td_loss = td_loss + critic_loss(module.twin_critic(x).squeeze(-1), targets, mask=mask)

        logits = module.actor_logits(observations[agent], joint.get(SUBPOLICY, {}).get(agent))
        with_fresh_action = {**actions, agent: module.action_vector(logits)}
        # The critic's weights are detached here: the actor loss trains mu_i only. With value
        # rescaling the actor ascends h(Q) (h increasing: the same best action, gradient h'(Q) dQ/da).
        q_fresh = call_with_frozen_params(module.critic, module.critic_input(agent, observations, with_fresh_action)).squeeze(-1)
        actor = actor_loss(q_fresh, logits, logits_reg=logits_reg, mask=mask)

        masked = mask.bool()
        return {
            CRITIC_LOSS: td_loss,
            ACTOR_LOSS: actor[ACTOR_LOSS],
            # Logged in return units whatever the critic's space, so runs compare.
            Q_MEAN: unscale(q.detach(), scale)[masked].mean() if masked.any() else q.new_zeros(()),
            TARGET_Q_MEAN: target_returns[masked].mean() if masked.any() else target_returns.new_zeros(()),
            LOGITS_REG: actor["logits_reg_term"],
        }

    # -- after the gradient step -----------------------------------------------------
    @override(TorchLearner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        tau = learner_settings(self.config).training.tau
        for module_id in self.module.keys():
            module = self.module[module_id].unwrapped()
            polyak_update(module.target_actor, module.actor, tau)
            polyak_update(module.target_critic, module.critic, tau)
            if module.has_twin_critic:
                polyak_update(module.target_twin_critic, module.twin_critic, tau)
            if hasattr(module, "approx_policies"):
                polyak_update(module.target_approx_policies, module.approx_policies, tau)

