"""Closed-loop control for the bundled TD-MPC-style world model: training, a latent MPPI planner, rollouts.

```python
from edgeprune.control import TrainConfig, train, Planner, PlannerConfig, rollout
result = train(TrainConfig(env_steps=6_000))            # TD-MPC losses on Pendulum-v1, CPU, minutes
planner = Planner(result.model, PlannerConfig(), action_high=2.0)
returns = rollout(planner.act_fn(seed=0), seeds=[100, 101, 102])   # closed-loop returns, one per seed
```

Needs gymnasium (``pip install 'edgeprune[control]'``); it is imported only when an environment is made.
"""

from edgeprune.control.env import ENV_ID, make_env, random_act_fn, rollout
from edgeprune.control.planner import Planner, PlannerConfig, policy_act_fn
from edgeprune.control.replay import Replay
from edgeprune.control.train import TrainConfig, TrainResult, finetune, load_model, tdmpc_losses, train, train_and_save

__all__ = [
    "ENV_ID",
    "Planner",
    "PlannerConfig",
    "Replay",
    "TrainConfig",
    "TrainResult",
    "finetune",
    "load_model",
    "make_env",
    "policy_act_fn",
    "random_act_fn",
    "rollout",
    "tdmpc_losses",
    "train",
    "train_and_save",
]
