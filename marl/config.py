"""The experiment config: typed, validated before Ray starts, loaded from YAML.

An experiment file has these sections (every field is documented below; the
`training` fields in the algorithm's own config.py):

    algorithm: mappo
    scenario: {name: simple_spread_v3, kwargs: {N: 3}, wrappers: []}
    policies: {sharing: shared}
    model: {hidden: [64, 64], activation: tanh}
    training: {...}          # the algorithm's own typed config (see its config.py)
    resources: {num_env_runners: 2, num_envs_per_env_runner: 8}
    stop: {env_steps: 2000000}
    checkpoint: {every_iterations: 10, keep: 3}
    seed: 0

Values can be overridden on the command line with dotted keys
(`training.lr=3e-4 resources.num_env_runners=1`). Any problem (an unknown key, a
wrong type, an impossible combination) raises `ConfigError` with one line that
names the key.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

from marl.errors import ConfigError

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.core.learner.learner import Learner


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, field docstrings are the docs."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


# A SuperSuit wrapper given as `name` or `{name: {kwarg: value}}`.
WrapperSpec = Union[str, dict[str, dict[str, Any]]]


class ScenarioConfig(StrictModel):
    name: str
    """A scenario name (`marl scenarios` lists them: every mpe2 scenario such as
    `simple_spread_v3`, the project's own such as `coordination_game`) or a
    `package.module:factory` path returning a PettingZoo ParallelEnv."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the scenario's factory (e.g. `{N: 3, max_cycles: 25}`)."""
    wrappers: list[WrapperSpec] = Field(default_factory=list)
    """SuperSuit preprocessing, applied in order, e.g.
    `[pad_observations_v0, pad_action_space_v0, {frame_stack_v1: {stack_size: 4}}]`."""
    global_state: Literal["env", "observations"] = "env"
    """What a centralised critic sees as the global state: `env` = the scenario's
    `state()` where it has one (else the observations); `observations` = all agents'
    observations concatenated in the fixed agent order. mpe2's `state()` is exactly
    that concatenation, recomputed, so its configs use `observations`."""
    backend: Literal["pettingzoo", "vectorized"] = "pettingzoo"
    """How env runners step the scenario. `pettingzoo`: RLlib's stock multi-agent env
    runner over the PettingZoo env (any scenario). `vectorized`: the fast path
    (`marl/rllib/vectorized_env_runner.py`), a batch of worlds sampled by one batched
    forward pass per policy: the scenario's numpy twin where it has one that takes these
    kwargs and no wrappers (`marl scenarios` marks them), else plain copies of the PettingZoo
    env stepped in a loop. Every agent must stay until its world's episode ends (a scenario
    whose agents leave early is stopped with one line: use `pettingzoo` for it)."""
    bootstrap_at_time_limit: bool = False
    """When every agent is truncated (the scenario's time limit, e.g. mpe2's `max_cycles`),
    record the episode as truncated, so value targets bootstrap from the last observation
    (Pardo et al. 2018, "Time Limits in RL"; MAPPO's `use_proper_time_limits`). false: the
    episode counts as terminated there, as RLlib 2.60 records it and MAPPO's reference code
    does by default. Agents that terminate are never bootstrapped either way."""
    check_steps: int = Field(5, ge=0)
    """Check the data of the first N steps of every episode (and its reset): observations
    inside their declared space and finite, rewards finite. A failure stops training
    with one line naming the agent, the key and the value. Checking only each episode's
    start keeps the check cheap enough to stay on; 0 turns it off (a scenario's
    exceptions stop the run either way)."""


class PoliciesConfig(StrictModel):
    sharing: Literal["per_agent", "shared", "groups"] = "shared"
    """`per_agent`: one policy per agent; `shared`: one policy for all agents;
    `groups`: one policy per group listed in `groups`."""
    groups: dict[str, list[str]] = Field(default_factory=dict)
    """For `sharing: groups`: policy name -> the agents it controls. Every agent
    must be in exactly one group."""
    agent_id_in_obs: bool | None = None
    """Append a one-hot agent id to each observation. Default: true when a policy
    controls more than one agent (so a shared policy can still specialise)."""


class ModelConfig(StrictModel):
    hidden: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of the actor and of the critic MLPs (they share no layers)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Activation of the hidden layers."""
    encoder: Literal["auto", "mlp", "cnn"] = "auto"
    """What reads the observation before the MLP. `auto`: a convolutional encoder for image
    observations (rank-3 Box, height x width x channels) where the algorithm has one (ippo,
    mappo, dpo), else none; `cnn`: always (an error for non-image observations); `mlp`: never
    (the flattened frame goes straight into the MLP)."""
    conv: list[tuple[int, int, int]] = Field(default_factory=lambda: [(16, 8, 4), (32, 4, 2)])
    """The convolutional encoder's layers as [out_channels, kernel, stride] (default: the DQN
    Atari encoder's, Mnih et al. 2013), each followed by a ReLU."""
    image_size: Union[Annotated[int, Field(ge=8)], Literal["auto", "full"]] = "auto"
    """Image observations (rank-3 frames) in ippo, mappo and dpo, whatever the encoder: the
    longest side a frame may keep. A larger frame is shrunk by averaging k x k pixel blocks,
    k the smallest integer that brings both sides within the bound (rows and columns left
    over at the edge are dropped), before it is stored or read by any network; the chosen size
    is printed once at the start. `auto`: 96 (cooperative_pong's 280x480 frames become 56x96,
    k = 5); a number: that bound; `full`: frames as the scenario (and its wrappers) give them.
    Frames already within the bound, such as those of a SuperSuit resize wrapper, are untouched."""


ThreadCount = Union[Annotated[int, Field(ge=1)], Literal["auto"]]


class ThreadsConfig(StrictModel):
    """torch intra-op and numpy/BLAS threads of each kind of process (marl/rllib/threads.py).
    Without a setting, torch and BLAS use every core of the machine in the driver."""

    driver: ThreadCount = "auto"
    """The driver process, and the learner in it when `num_learners: 0`. `auto`: 1, unless that
    learner runs a large update on the CPU (`large_update_work`): then its node's CPUs minus
    those reserved by the env runners Ray placed there, at least 1."""
    env_runner: ThreadCount = "auto"
    """Each remote env runner. `auto`: its `num_cpus_per_env_runner`, rounded down, at least 1."""
    learner: ThreadCount = "auto"
    """Each remote learner (`num_learners` >= 1). `auto`: the CPUs Ray reserves for it (1 for a
    CPU learner; a GPU learner reserves none and gets 1)."""


class ResourcesConfig(StrictModel):
    num_env_runners: Union[Annotated[int, Field(ge=0)], Literal["auto"]] = 2
    """RLlib EnvRunner actors sampling in parallel (0 samples in the driver). `auto`: as many
    as the cluster's CPUs host at `num_cpus_per_env_runner` each, one CPU left for the driver
    (and remote learners' CPUs); at least 0. Checked before anything is built: a request that
    does not fit fails with one line (marl/rllib/resources.py)."""
    num_envs_per_env_runner: int = Field(4, ge=1)
    """Scenario copies each EnvRunner steps in turn (amortises per-call overhead)."""
    rollout_fragment_length: int | Literal["auto"] = "auto"
    """Env steps per sub-env per sample() call; `auto` splits the train batch evenly."""
    num_learners: int = Field(0, ge=0)
    """0: one learner in the driver; N: N remote data-parallel learner actors."""
    num_gpus_per_learner: float | Literal["auto"] = "auto"
    """GPUs per learner. `auto`: 1 when the Ray cluster has a GPU for every learner AND one
    gradient step is big enough to gain from it (`large_update_work`), else 0 (CPU)."""
    large_update_work: float = Field(2e9, ge=0)
    """Work of one gradient step (parameters of all modules x rows of a minibatch) from which
    an update counts as large. A large update gets the GPU (`num_gpus_per_learner: auto`) and,
    on the CPU, every core its node leaves (`threads.driver: auto`); a smaller one stays on the
    CPU at one thread. Measured: the shipped MAPPO (2.7e8) and MADDPG (8.9e7) configs trained
    about a third slower on an H200's GPU than on its CPU, and MAPPO's driver ran ~10x slower
    at 2 threads than at 1 on a loaded 2-core machine (docs/performance.md); where the GPU
    starts to win is to be measured with benchmarks/hardware.py. 0: every update is large."""
    num_cpus_per_env_runner: float = Field(1.0, gt=0)
    """CPUs Ray reserves for each EnvRunner."""
    threads: ThreadsConfig = Field(default_factory=ThreadsConfig)
    """Threads per process (torch, numpy/BLAS), from what Ray grants each by default; printed
    once at the start of a run."""
    restart_failed_env_runners: bool = True
    """Fault tolerance: when an EnvRunner dies (its process crashed or was killed, its
    node was lost), Ray restarts it with the same index and RLlib syncs the current
    weights to it; training continues meanwhile on the healthy ones. False: the first
    failure stops training."""
    max_num_env_runner_restarts: int = Field(1000, ge=0)
    """How often each EnvRunner may be restarted before it is given up for good."""
    delay_between_env_runner_restarts_s: float = Field(10.0, ge=0)
    """An EnvRunner whose sampling raised waits this long before exiting to be restarted
    (back-pressure against a crash loop; a killed process restarts at once). RLlib's
    default is 60. A scenario fault, or a failure right after a restart, stops training
    instead (marl/rllib/faults.py)."""
    num_consecutive_env_runner_failures_tolerance: int = Field(100, ge=0)
    """Consecutive failed sampling rounds tolerated before training stops with the error."""
    env_runner_health_probe_timeout_s: float = Field(30.0, gt=0)
    """Seconds to wait for a (restarted) EnvRunner to answer a health ping."""
    restart_failed_sub_environments: bool = False
    """For flaky simulators: when a scenario copy raises in reset/step (or fails the data
    checks), rebuild that copy, drop the env runner's unfinished episodes and go on; the
    error is only logged in the env runner's log, and a fault in the checks before Ray is a
    warning. RLlib restarts the count of a sample() call after each failure, so a scenario
    that fails within every rollout fragment never finishes one (training hangs). false
    (default): a scenario fault stops training with one line and the full traceback in the
    run directory, since a deterministic bug would otherwise repeat for ever."""


class StopConfig(StrictModel):
    env_steps: int = Field(gt=0)
    """Stop once this many env steps (joint steps of the whole scenario) were sampled."""


class CheckpointConfig(StrictModel):
    every_iterations: int = Field(10, ge=1)
    """Write a checkpoint every N training iterations (and always at the end)."""
    keep: int = Field(3, ge=1)
    """How many of the newest checkpoints to keep on disk."""


class AlgorithmSettings(StrictModel):
    """The contract of an algorithm's `training` section: its typed hyperparameters (one field,
    one docstring each, in the algorithm's config.py), what it can train on (the capability
    flags below, which tests parametrize over), the checks that need the whole experiment, and
    the builder of the RLlib config that trains it.

    Frozen: the validated settings are handed as they are to the algorithm's RLlib Learner
    (`marl.algorithms.common.learner_settings`), so what the learner reads is what was checked.
    RLlib, torch and the learners are imported inside the methods that build the RLlib config:
    validating a config (the first thing `marl train` does) must not wait for them.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    @classmethod
    @abstractmethod
    def learner_class(cls) -> type[Learner]:
        """The RLlib Learner that computes this algorithm's loss."""

    @abstractmethod
    def to_rllib(self, experiment: ExperimentConfig, *, num_gpus_per_learner: float) -> AlgorithmConfig:
        """The RLlib AlgorithmConfig that trains `experiment` (probes the scenario's spaces)."""

    @classmethod
    def has_centralized_critic(cls) -> bool:
        """Whether the algorithm's critic sees the global state (by default)."""
        return False

    def uses_centralized_critic(self) -> bool:
        """Whether this config's critic sees the global state (an instance may differ from the default)."""
        return self.has_centralized_critic()

    @classmethod
    def supports_discrete_actions(cls) -> bool:
        return True

    @classmethod
    def supports_continuous_actions(cls) -> bool:
        return True

    @classmethod
    def supports_image_encoder(cls) -> bool:
        """Whether its networks read image observations with a convolutional encoder (`model.encoder`)."""
        return False

    @classmethod
    def supports_backend(cls, backend: str) -> bool:
        """Whether the env runners of `scenario.backend` can sample this algorithm's module."""
        return True

    def check_compatible(self, experiment: ExperimentConfig) -> None:
        """Checks that need the whole experiment but not the scenario; raise ConfigError in one line."""

    def budget_warnings(self, experiment: ExperimentConfig, *, max_iterations: int | None = None) -> list[str]:
        """What this run's budget cannot do, said before it starts."""
        return []


class ExperimentConfig(StrictModel):
    algorithm: str
    """Algorithm name from the registry (`marl algorithms` lists them: `ippo`, `mappo`, `dpo`, `maddpg`)."""
    scenario: ScenarioConfig
    """Which PettingZoo scenario to train on, with its kwargs and wrappers."""
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    """How agents map to policies (parameter sharing)."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """Network sizes."""
    training: SerializeAsAny[AlgorithmSettings] | None = None
    """The algorithm's hyperparameters, validated against the algorithm's own settings class
    (`marl.experiment.build_config` picks it from the registry)."""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    """Env runners, learners and GPUs."""
    stop: StopConfig
    """When to stop."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """How often to checkpoint."""
    seed: int = 0
    """Seed for the scenario copies, the networks and sampling."""
    name: str | None = None
    """Run name (the run directory's prefix). Default: `<algorithm>_<scenario>`."""
    teams: dict[str, list[str]] = Field(default_factory=dict)
    """Teams for the per-team returns `marl evaluate` prints (mixed cooperative-competitive
    scenarios): team name -> its agents, every agent in exactly one team. Default: agents
    grouped by name prefix (the name without a trailing `_<number>`: `adversary_0`,
    `adversary_1` -> `adversary`)."""

    @property
    def run_name(self) -> str:
        return self.name or f"{self.algorithm}_{self.scenario.name.replace(':', '_').replace('.', '_')}"


# What to write when a required section or key is missing: the fix, not just the problem.
_MISSING_EXAMPLES = {
    "stop": "add a section `stop: {env_steps: 1000000}` (or `stop.env_steps=1000000` on the command line)",
    "stop.env_steps": "add `env_steps: 1000000` under `stop:` (or `stop.env_steps=1000000` on the command line)",
    "algorithm": "add `algorithm: mappo` (`marl algorithms` lists them)",
    "scenario": "add `scenario: {name: simple_spread_v3}` (`marl scenarios` lists them)",
    "scenario.name": "add `name: simple_spread_v3` under `scenario:` (`marl scenarios` lists them)",
}


def section_fields(model: type[BaseModel], path: tuple) -> list[str]:
    """The field names of the config section at `path` inside `model` (empty if not a section)."""
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def closest_keys(key: str, valid: list[str]) -> list[str]:
    """Valid keys a misspelt `key` probably meant: close spellings, else those containing it (`lr` -> `lr_actor`)."""
    import difflib

    similar = difflib.get_close_matches(key, valid, n=2, cutoff=0.75)
    return similar or [name for name in valid if key and (key in name or name in key)][:3]


# Pydantic names the member of a union an error came from in the location (`constrained-int`,
# `literal['auto']`, `float`, ...); users know only their keys.
_UNION_MEMBER = re.compile(r"^(constrained-\w+|literal\[.*\]|function-\w+\[.*\]|int|float|str|bool|none|list\[.*\]|dict\[.*\])$")


def _key_path(loc: tuple) -> tuple:
    return tuple(part for part in loc if not (isinstance(part, str) and _UNION_MEMBER.match(part)))


def describe_validation_error(error: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """The first pydantic error as 'key.path: problem; fix' (a union's alternatives joined by 'or')."""
    errors = error.errors()
    first = errors[0]
    loc = _key_path(first["loc"])
    where = prefix + (".".join(str(part) for part in loc) or "config")
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        valid = section_fields(model, loc[:-1])
        guess = closest_keys(key, valid)
        hint = f"did you mean {' or '.join(repr(name) for name in guess)}? " if guess else ""
        section = (prefix + ".".join(str(part) for part in loc[:-1])).rstrip(".") or "the top level"
        return f"{where}: unknown key; {hint}valid keys of {section}: {', '.join(valid)}"
    if first["type"] == "missing":
        return f"{where}: required key is missing; " + _MISSING_EXAMPLES.get(where, "add it to the config")
    alternatives = list(dict.fromkeys(e["msg"] for e in errors if _key_path(e["loc"]) == loc))
    return f"{where}: {' or '.join(alternatives)} (got {first.get('input')!r})"


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a nested dict."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected KEY=VALUE, e.g. training.lr=3e-4")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(text)
    return raw


def _parse_value(text: str) -> Any:
    """YAML scalars, plus `3e-4`/`2e6`, which YAML 1.1 reads as strings."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value and "e-" not in value.lower() else number
    return value


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain data (what a run directory stores)."""
    return config.model_dump(mode="json")
