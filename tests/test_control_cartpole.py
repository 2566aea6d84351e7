"""Cart-pole swing-up (DeepMind Control Suite through shimmy): the env wrapper, a tiny training run, the
benchmark reading the task back from a train JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

# dm-control and shimmy come in the same `control` extra as gymnasium: with gymnasium installed they must be
# there too (their absence is a broken install and fails here), so the one skip is the extra not installed at all
pytest.importorskip("gymnasium", reason="the control extra is not installed: pip install 'edgeprune[control]'")

import gymnasium as gym

from edgeprune.control.env import make_env, random_act_fn, rollout
from edgeprune.control.train import TASKS, task_config, train
from edgeprune.errors import EdgepruneError
from edgeprune.extras import MissingExtraError

CARTPOLE = TASKS["cartpole-swingup"]["env_id"]
SMALL = {"latent_dim": 16, "hidden_dim": 32}


def test_cartpole_env_is_flat_repeats_actions_and_reseeds() -> None:
    env = make_env(CARTPOLE)
    assert env.observation_space.shape == (5,) and env.action_space.shape == (1,)
    obs, _ = env.reset(seed=4)
    again, _ = make_env(CARTPOLE).reset(seed=4)
    other, _ = make_env(CARTPOLE).reset(seed=5)
    np.testing.assert_array_equal(obs, again)  # seeded reset: repeatable
    assert not np.array_equal(obs, other)
    assert abs(obs[1] + 1) < 0.01  # cos of the pole angle: swing-up starts hanging down

    raw = gym.wrappers.FlattenObservation(gym.make(CARTPOLE))  # the suite env itself, one physics step per step
    raw.reset(seed=4)
    action = np.array([0.7], dtype=np.float32)
    wrapped_obs, wrapped_reward, *_ = env.step(action)
    raw_steps = [raw.step(action) for _ in range(8)]
    np.testing.assert_array_equal(wrapped_obs, raw_steps[-1][0])  # one wrapped step = 8 physics steps
    np.testing.assert_allclose(wrapped_reward, sum(step[1] for step in raw_steps), rtol=1e-12)
    assert not np.array_equal(wrapped_obs, raw_steps[0][0])

    steps = 1
    while True:  # 1000 physics steps / 8 -> 125 decisions, then truncated
        _, reward, terminated, truncated, _ = env.step(action)
        steps += 1
        assert 0 <= reward <= 8
        if terminated or truncated:
            break
    assert (steps, terminated, truncated) == (125, False, True)


def test_missing_dm_control_names_the_control_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dm_control", None)  # what Python does for a package that is not installed
    with pytest.raises(MissingExtraError, match=r"dm_control.*\n.*\n.*pip install 'edgeprune\[control\]'"):
        make_env(CARTPOLE)


def test_cartpole_rollout_is_seeded_and_bounded() -> None:
    returns, trace = rollout(random_act_fn(0, 1, 1.0), [7, 8], CARTPOLE, max_steps=10, record=True)
    assert trace["obs"].shape == (2, 11, 5) and trace["action"].shape == (2, 10, 1)
    assert np.all(np.abs(trace["action"]) <= 1.0) and np.all((returns >= 0) & (returns <= 80))
    np.testing.assert_array_equal(returns, rollout(random_act_fn(0, 1, 1.0), [7, 8], CARTPOLE, max_steps=10))


@pytest.mark.slow
def test_two_episode_cartpole_training_runs() -> None:
    cfg = task_config("cartpole-swingup", env_steps=250, seed_steps=125, batch_size=32, updates_per_step=0.1,
                      eval_every=2, model=SMALL)  # fmt: skip
    assert (cfg.model["obs_dim"], cfg.action_high, cfg.discount) == (5, 1.0, 0.96)
    assert cfg.model["hidden_dim"] == 32  # overrides merge into the task's model arguments
    result = train(cfg)
    assert result.replay.transitions == 250 and result.replay.obs[0].shape == (126, 5)
    assert np.abs(np.concatenate(result.replay.action)).max() <= 1.0
    curve = result.curve
    assert len(curve["eval_return"]) == len(curve["eval_planner_return"]) == 1
    assert np.isfinite(curve["eval_planner_return"]).all() and curve["eval_planner_return"][0] >= 0
    with pytest.raises(EdgepruneError, match="unknown control task"):
        task_config("acrobot")


def test_benchmark_reads_the_task_back_from_the_train_json(tmp_path: Path) -> None:
    from edgeprune.models.tdmpc import TDMPCStyle

    bench = load_benchmark("control")
    cfg = task_config("cartpole-swingup", model=SMALL)
    torch.manual_seed(0)
    weights = tmp_path / "tdmpc_cartpole_seed0.pt"
    torch.save(TDMPCStyle(**cfg.model).state_dict(), weights)
    (tmp_path / "tdmpc_cartpole_seed0_train.json").write_text(json.dumps({"config": cfg.to_dict()}))
    model, _, read = bench.load_trained(str(weights), bench.ARCHS["tdmpc"])
    assert (read.env_id, read.action_high, read.discount, read.episode_steps) == (CARTPOLE, 1.0, 0.96, 125)
    assert model.obs_dim == 5 and read.planner_config().discount == 0.96
