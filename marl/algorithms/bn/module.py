"""The BN-MAPPO RLModule: a joint policy that factors over a DAG of agents, and MAPPO's critic.

pi(a | s) = prod_i pi_i(a_i | o_i, a_Pa(i))   (Chen & Zhang, ICML 2023)

One module controls the whole team (see marl/envs/team.py): its observation holds
every agent's `[obs | id]` and the global state; its action is one action per agent.

- Actor: ONE network shared by all agents (the agent id in o_i lets it specialise).
  Agent i's input is `[o_i | parents' one-hot actions]`, where block j of the second
  part is onehot(a_j) times the edge A[j, i] (zeros for non-parents).
- Graph: `fixed` (a constant adjacency: empty = MAPPO, full, chain, user-given), or
  `learned` and context-aware: edge logits from a DeepSets encoder of the agents'
  observations (per-agent MLP, mean pool, MLP decoder to n x n logits), and the
  permutation logits from an MLP of all observations (or the identity order),
  sampled differentiably by marl.algorithms.bn.dag.sample_dag.
- Critic: MAPPO's centralised V(s) on the global state, with value normalisation.

Forward passes:
- exploration / inference: sample a graph, then agents act in rounds: in each round
  every agent whose parents have all acted samples (or, greedily, picks) its action
  seeing those parents' actions. Returns ACTIONS itself (RLlib's GetActions connector
  then does not sample again), ACTION_LOGP = the joint log-probability, and per
  agent: its log-probability (`bn_agent_logp`), the graph (`bn_adjacency`) and the
  parents' actions it saw (`bn_seen_parent_actions`, -1 for non-parents).
- training: teacher forcing. The parents' actions are the STORED actions of the
  batch, the graph is re-sampled (with gradients to the DAG network), and the
  outputs are the per-agent log-probabilities of the stored actions and the graphs'
  edge densities (for the sparsity penalty).

`execution_graph` ("sampled" or "empty") picks the graph for exploration and
inference; "empty" is decentralised execution: no agent sees any other's action.
Random draws (graphs, actions) use torch's global generator, as RLlib's own action
sampling does, so RLlib's per-env-runner seeding covers them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override

from marl.algorithms.bn.dag import sample_dag
from marl.core.graphs import edge_density
from marl.core.keys import BN_ADJACENCY, BN_AGENT_LOGP, BN_DENSITY, BN_SEEN_PARENT_ACTIONS
from marl.core.networks import in_return_units, mlp, value_head
from marl.rllib.acting import EpisodeRandomness, ModuleActions, drawing_from

EXECUTION_GRAPHS = ("sampled", "empty")


class AgentMeanMultiCategorical(TorchMultiCategorical):
    """One categorical per agent; the entropy is the MEAN over agents, as MAPPO's per-agent rows weigh it."""

    @override(TorchMultiCategorical)
    def entropy(self) -> torch.Tensor:
        return super().entropy() / len(self._cats)


class TeamActionDistribution:
    """What RLlib expects from `get_*_action_dist_cls()`: a `from_logits` for (B, n * A) logits."""

    def __init__(self, n_agents: int, num_actions: int):
        self.input_lens = [num_actions] * n_agents

    def from_logits(self, logits: torch.Tensor) -> AgentMeanMultiCategorical:
        return AgentMeanMultiCategorical.from_logits(logits, input_lens=self.input_lens)


class BNModule(TorchRLModule, ValueFunctionAPI):
    """model_config keys: n_agents, agent_dim, state_dim, num_actions, hidden, activation,
    value_normalization, graph ("learned" or "fixed"), fixed_adjacency (n x n, for fixed),
    learn_order (learned graphs: learn the permutation, else the identity order), dag_hidden."""

    @override(TorchRLModule)
    def setup(self):
        cfg = self.model_config
        self.n, self.agent_dim = int(cfg["n_agents"]), int(cfg["agent_dim"])
        self.state_dim, self.num_actions = int(cfg["state_dim"]), int(cfg["num_actions"])
        hidden, activation = list(cfg["hidden"]), cfg["activation"]
        n, A = self.n, self.num_actions

        self.actor = mlp(self.agent_dim + n * A, hidden, A, activation, out_gain=0.01)
        self.critic, self.value_normalizer = value_head(
            self.state_dim, hidden, activation, normalize=cfg.get("value_normalization", False)
        )

        self.learned_graph = cfg["graph"] == "learned"
        if self.learned_graph:
            dag_hidden = list(cfg.get("dag_hidden", [64]))
            width = dag_hidden[-1]
            # DeepSets: phi per agent, mean pool, rho to n x n edge logits.
            self.edge_encoder = mlp(self.agent_dim, dag_hidden[:-1], width, activation, out_gain=1.0)
            self.edge_decoder = mlp(width, dag_hidden, n * n, activation, out_gain=0.01)
            self.order_net = (
                mlp(n * self.agent_dim, dag_hidden, n * n, activation, out_gain=0.01) if cfg.get("learn_order", True) else None
            )
        else:
            self.register_buffer("fixed_adjacency", torch.as_tensor(np.asarray(cfg["fixed_adjacency"]), dtype=torch.float32))
        self.execution_graph = "sampled"

    # -- distributions ---------------------------------------------------------------
    def _team_distribution(self) -> TeamActionDistribution:
        return TeamActionDistribution(self.n, self.num_actions)

    @override(TorchRLModule)
    def get_train_action_dist_cls(self):
        return self._team_distribution()

    @override(TorchRLModule)
    def get_exploration_action_dist_cls(self):
        return self._team_distribution()

    @override(TorchRLModule)
    def get_inference_action_dist_cls(self):
        return self._team_distribution()

    # -- slicing the team observation --------------------------------------------------
    def agent_observations(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n, agent_dim): each agent's [obs | id]."""
        return obs[..., : self.n * self.agent_dim].reshape(*obs.shape[:-1], self.n, self.agent_dim)

    def global_state(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[..., self.n * self.agent_dim :]

    # -- the graph ------------------------------------------------------------------------
    def graph_logits(self, agent_obs: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(permutation logits or None, edge logits), each (B, n, n), from the observations."""
        batch = agent_obs.shape[:-2]
        pooled = self.edge_encoder(agent_obs).mean(dim=-2)
        edge_logits = self.edge_decoder(pooled).reshape(*batch, self.n, self.n)
        if self.order_net is None:
            return None, edge_logits
        return self.order_net(agent_obs.flatten(-2)).reshape(*batch, self.n, self.n), edge_logits

    def sample_graph(self, agent_obs: torch.Tensor) -> torch.Tensor:
        """(B, n, n) adjacency, A[j, i] = 1: j is a parent of i. Differentiable when learned."""
        batch = agent_obs.shape[:-2]
        if not self.learned_graph:
            return self.fixed_adjacency.expand(*batch, self.n, self.n)
        permutation_logits, edge_logits = self.graph_logits(agent_obs)
        return sample_dag(permutation_logits, edge_logits, generator=None)

    def execution_adjacency(self, agent_obs: torch.Tensor) -> torch.Tensor:
        if self.execution_graph == "empty":
            return agent_obs.new_zeros(*agent_obs.shape[:-2], self.n, self.n)
        return self.sample_graph(agent_obs)

    # -- the actor --------------------------------------------------------------------------
    def parent_inputs(self, actions_onehot: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """(B, n, n * A): for child i, block j is onehot(a_j) * A[j, i]."""
        blocks = adjacency.transpose(-1, -2).unsqueeze(-1) * actions_onehot.unsqueeze(-3)  # [b, i, j, a]
        return blocks.flatten(-2)

    def agent_logits(self, agent_obs: torch.Tensor, actions_onehot: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """(B, n, A): each agent's action logits given its parents' actions."""
        return self.actor(torch.cat([agent_obs, self.parent_inputs(actions_onehot, adjacency)], dim=-1))

    def act(self, agent_obs: torch.Tensor, adjacency: torch.Tensor, *, greedy: bool) -> dict[str, torch.Tensor]:
        """Agents act in topological rounds of `adjacency`; returns the module outputs."""
        batch = agent_obs.shape[:-2]
        actions = torch.zeros(*batch, self.n, dtype=torch.long, device=agent_obs.device)
        acted = torch.zeros(*batch, self.n, dtype=torch.bool, device=agent_obs.device)
        seen = torch.full((*batch, self.n, self.n), -1, dtype=torch.long, device=agent_obs.device)
        is_parent = adjacency > 0.5
        for _ in range(self.n):  # a DAG over n agents has at most n levels
            # Ready: not acted yet, and every parent has acted.
            ready = ~acted & ~(is_parent & ~acted.unsqueeze(-1)).any(dim=-2)
            if not ready.any():
                break
            onehot = F.one_hot(actions, self.num_actions).to(agent_obs.dtype) * acted.unsqueeze(-1)
            logits = self.agent_logits(agent_obs, onehot, adjacency)
            if greedy:
                chosen = logits.argmax(dim=-1)
            else:
                chosen = torch.distributions.Categorical(logits=logits).sample()
            # Record what each newly acting agent saw: its parents' actions (-1 elsewhere).
            parents_actions = torch.where(is_parent.transpose(-1, -2), actions.unsqueeze(-2), torch.full_like(seen, -1))
            seen = torch.where(ready.unsqueeze(-1), parents_actions, seen)
            actions = torch.where(ready, chosen, actions)
            acted = acted | ready
        # Every agent's logits with all actions known equal those it acted on: it only reads its parents.
        logits = self.agent_logits(agent_obs, F.one_hot(actions, self.num_actions).to(agent_obs.dtype), adjacency)
        agent_logp = torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return {
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: agent_logp.sum(dim=-1),
            Columns.ACTION_DIST_INPUTS: logits.flatten(-2),
            BN_AGENT_LOGP: agent_logp,
            BN_ADJACENCY: adjacency.flatten(-2),
            BN_SEEN_PARENT_ACTIONS: seen.flatten(-2),
        }

    # -- RLModule forward passes -------------------------------------------------------------
    @override(TorchRLModule)
    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        agent_obs = self.agent_observations(batch[Columns.OBS])
        return self.act(agent_obs, self.execution_adjacency(agent_obs), greedy=False)

    @override(TorchRLModule)
    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        agent_obs = self.agent_observations(batch[Columns.OBS])
        return self.act(agent_obs, self.execution_adjacency(agent_obs), greedy=True)

    @override(TorchRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Teacher forcing: parents' actions are the batch's stored actions; the graph is re-sampled."""
        agent_obs = self.agent_observations(batch[Columns.OBS])
        actions = batch[Columns.ACTIONS].long()
        adjacency = self.sample_graph(agent_obs)
        logits = self.agent_logits(agent_obs, F.one_hot(actions, self.num_actions).to(agent_obs.dtype), adjacency)
        agent_logp = torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return {
            Columns.ACTION_DIST_INPUTS: logits.flatten(-2),
            BN_AGENT_LOGP: agent_logp,
            BN_DENSITY: edge_density(adjacency),
            BN_ADJACENCY: adjacency.detach(),
        }

    @override(TorchRLModule)
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._forward_inference(batch, **kwargs)

    # -- values ---------------------------------------------------------------------------------
    def normalized_values(self, batch: dict[str, Any]) -> torch.Tensor:
        """The critic's raw output V(s): normalised units when value normalisation is on."""
        return self.critic(self.global_state(batch[Columns.OBS])).squeeze(-1)

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return in_return_units(self.normalized_values(batch), self.value_normalizer)

    # -- acting outside RLlib (marl/rllib/acting.py) -----------------------------------------------
    @torch.no_grad()
    def act_in_evaluation(self, obs: torch.Tensor, *, explore: bool, randomness: EpisodeRandomness, memory: list[Any]) -> ModuleActions:
        """The team's actions over `execution_graph`, as the env runners act (exploring: sampled,
        else greedy in each round). Details per team: `agent_probabilities` (n, A), each agent's
        action probabilities given its parents' actual actions, and `adjacency` (n, n), the graph
        it acted on, [j, i] = 1 when j is a parent of i."""
        with drawing_from(randomness.torch):
            output = self.forward_exploration({Columns.OBS: obs}) if explore else self.forward_inference({Columns.OBS: obs})
        rows = obs.shape[0]
        logits = output[Columns.ACTION_DIST_INPUTS].reshape(rows, self.n, self.num_actions)
        return ModuleActions(
            output[Columns.ACTIONS].numpy(),
            details={
                "agent_probabilities": torch.softmax(logits, dim=-1).numpy(),
                "adjacency": output[BN_ADJACENCY].reshape(rows, self.n, self.n).numpy(),
            },
        )
