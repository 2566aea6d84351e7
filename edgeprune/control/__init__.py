"""Closed-loop control for the bundled world models (TD-MPC-style, and the recurrent RSSM-style): training,
latent MPPI planners, rollouts.

```python
from edgeprune.control import TrainConfig, task_config, train, Planner, PlannerConfig, rollout
result = train(TrainConfig(env_steps=6_000))            # TD-MPC losses on Pendulum-v1, CPU, minutes
planner = Planner(result.model, PlannerConfig(), action_high=2.0)
returns = rollout(planner.act_fn(seed=0), seeds=[100, 101, 102])   # closed-loop returns, one per seed
cartpole = train(task_config("cartpole-swingup"))      # DeepMind Control cart-pole swing-up (dm-control, MuJoCo)
rssm = train(RSSMTrainConfig()).model                   # the recurrent model: reward + KL losses, planner-explored
returns = rollout(RecurrentPlanner(rssm).act_fn(seed=0), seeds=[100])   # PlaNet-style, GRU state carried
```

Needs gymnasium (``pip install 'edgeprune[control]'``); it is imported only when an environment is made.
"""

from edgeprune.control.env import ENV_ID, make_env, random_act_fn, rollout
from edgeprune.control.planner import (
    RECURRENT_PLANNER,
    Planner,
    PlannerConfig,
    RecurrentPlanner,
    planner_for,
    policy_act_fn,
)
from edgeprune.control.replay import Replay
from edgeprune.control.rssm import RSSMLearner, RSSMTrainConfig, rssm_losses
from edgeprune.control.train import (
    LoopConfig,
    TrainConfig,
    TrainResult,
    finetune,
    load_model,
    task_config,
    tdmpc_losses,
    train,
    train_and_save,
)

__all__ = [
    "ENV_ID",
    "RECURRENT_PLANNER",
    "LoopConfig",
    "Planner",
    "PlannerConfig",
    "RSSMLearner",
    "RSSMTrainConfig",
    "RecurrentPlanner",
    "Replay",
    "TrainConfig",
    "TrainResult",
    "finetune",
    "load_model",
    "make_env",
    "planner_for",
    "policy_act_fn",
    "random_act_fn",
    "rollout",
    "rssm_losses",
    "task_config",
    "tdmpc_losses",
    "train",
    "train_and_save",
]
