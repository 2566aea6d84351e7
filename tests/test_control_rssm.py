"""The recurrent model in the control benchmark: its losses, the PlaNet-style planner, training and the --arch path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

pytest.importorskip("gymnasium")

from edgeprune.control import (
    PlannerConfig,
    RecurrentPlanner,
    Replay,
    RSSMTrainConfig,
    finetune,
    rollout,
    rssm_losses,
    train,
    train_and_save,
)
from edgeprune.errors import EdgepruneError
from edgeprune.models.rssm import RSSMStyle
from edgeprune.prune import sensitivity

SMALL = {"obs_dim": 3, "action_dim": 1, "deter_dim": 16, "classes": 8, "hidden_dim": 32, "decoder": True}
TINY_PLAN = PlannerConfig(horizon=3, iterations=1, num_samples=8, num_pi=0, num_elites=2, discount=0.99)
SMALL_CFG = RSSMTrainConfig(batch_size=16, seq_len=8, rollout=4, planner=TINY_PLAN, model=SMALL)


def test_training_steps_reduce_the_losses(replay: Replay) -> None:
    torch.manual_seed(0)
    learner = SMALL_CFG.make_learner(SMALL_CFG.make_model())
    held_out = replay.sample(64, SMALL_CFG.seq_len, np.random.default_rng(123))

    def losses() -> dict[str, float]:
        with torch.no_grad():
            return {k: float(v) for k, v in rssm_losses(learner.model, *held_out, SMALL_CFG).items()}

    before = losses()
    rng = np.random.default_rng(0)
    for _ in range(40):
        step = learner.update(learner.sample(replay, rng))
    after = losses()
    assert set(step) == {"total", "reward", "dyn", "rep", "cont", "decoder"}
    # the decoder makes the latent informative, so the prior's KL to it rises at first: not asserted
    assert after["total"] < 0.9 * before["total"], (before, after)
    assert after["reward"] < 0.9 * before["reward"] and after["decoder"] < 0.9 * before["decoder"], (before, after)


def test_decoder_loss_reconstructs_the_filtered_observations(replay: Replay) -> None:
    torch.manual_seed(0)
    model = SMALL_CFG.make_model()
    obs, action, reward = replay.sample(4, SMALL_CFG.seq_len, np.random.default_rng(0))
    with torch.no_grad():
        losses = rssm_losses(model, obs, action, reward, SMALL_CFG)
        post = model.posterior(model.encoder(obs))  # o_t from (h_t, q_t), h_0 = 0, h_t+1 = dynamics(q_t, a_t, h_t)
        hs = [torch.zeros(4, SMALL["deter_dim"])]
        for t in range(SMALL_CFG.seq_len):
            hs.append(model.dynamics(post[t], action[t], hs[-1]))
        expected = (model.decoder(torch.stack(hs), post) - obs).pow(2).sum(-1).mean()
        without = rssm_losses(model, obs, action, reward, dataclasses.replace(SMALL_CFG, decoder_coef=0.0))
        plain = RSSMStyle(**{**SMALL, "decoder": False})
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")})
        no_decoder = rssm_losses(plain, obs, action, reward, SMALL_CFG)
    torch.testing.assert_close(losses["decoder"], expected)
    torch.testing.assert_close(losses["total"], without["total"] + SMALL_CFG.decoder_coef * expected)
    assert "decoder" not in no_decoder
    torch.testing.assert_close(no_decoder["total"], without["total"])


def test_losses_refuse_a_rollout_longer_than_the_sequence(replay: Replay) -> None:
    cfg = dataclasses.replace(SMALL_CFG, seq_len=3)
    with pytest.raises(EdgepruneError, match="rollout depth 4"):
        rssm_losses(cfg.make_model(), *replay.sample(4, 3, np.random.default_rng(0)), cfg)


def test_planner_carries_the_gru_state() -> None:
    torch.manual_seed(0)
    model = RSSMStyle(**SMALL).eval()
    planner = RecurrentPlanner(model, TINY_PLAN)
    obs = torch.tensor(np.random.default_rng(0).standard_normal((3, 3)), dtype=torch.float32)
    planner.reset(0)
    a0 = planner.plan(obs)
    assert a0.shape == (3, 1) and torch.all(a0.abs() <= 1)
    with torch.no_grad():  # h_1 = dynamics(posterior(encoder(o_0)), a_0, h_0 = 0)
        h1 = model.dynamics(model.posterior(model.encoder(obs)), a0, torch.zeros(3, SMALL["deter_dim"]))
        state = planner._start(obs)
    torch.testing.assert_close(state[:, : SMALL["deter_dim"]], h1)
    actions = torch.rand(3, TINY_PLAN.horizon, 1) * 2 - 1
    zeroed = torch.cat([torch.zeros_like(h1), state[:, SMALL["deter_dim"] :]], -1)
    assert not torch.allclose(planner._value(state, actions), planner._value(zeroed, actions))  # h is used
    planner.reset(0)
    assert planner._start(obs)[:, : SMALL["deter_dim"]].abs().sum() == 0  # a new episode starts from h = 0


def test_planner_refuses_policy_samples() -> None:
    with pytest.raises(EdgepruneError, match="num_pi=0"):
        RecurrentPlanner(RSSMStyle(**SMALL), PlannerConfig())


def test_env_actions_and_closed_loop() -> None:
    torch.manual_seed(0)
    planner = RecurrentPlanner(RSSMStyle(**SMALL), TINY_PLAN, action_high=2.0)
    act = planner.act_fn(0)
    a = act(np.zeros((2, 3), dtype=np.float32))
    assert a.shape == (2, 1) and a.dtype == np.float32 and np.all(np.abs(a) <= 2.0)
    returns = rollout(planner.act_fn(0), [0, 1], max_steps=10)
    assert returns.shape == (2,) and np.isfinite(returns).all()
    np.testing.assert_array_equal(returns, rollout(planner.act_fn(0), [0, 1], max_steps=10))


def test_train_and_finetune_tiny(replay: Replay) -> None:
    cfg = dataclasses.replace(SMALL_CFG, env_steps=400, seed_steps=200, updates_per_step=0.05, eval_every=1)
    result = train(cfg)
    assert isinstance(result.model, RSSMStyle) and result.replay.transitions == 400
    assert len(result.curve["eval_return"]) == 2 and np.isfinite(result.curve["losses"]["reward"]).all()
    again = train(cfg)  # seeded: the same run gives the same weights
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in result.model.state_dict().items())
    tuned, summary = finetune(result.model, replay, 30, cfg, seed=0)
    assert tuned is not result.model and summary["last_total"] < summary["first_total"]


def _benchmark_module():
    return load_benchmark("control")


def test_benchmark_pruning_calls_on_the_recurrent_model() -> None:
    bench = _benchmark_module()
    torch.manual_seed(0)
    model = RSSMTrainConfig().make_model().eval()  # the benchmark's model size
    inputs = model.example_inputs()
    report = sensitivity(model, model.example_inputs(64))
    n0 = bench.param_count(model)
    for method in bench.ALL_METHODS:
        pruned, info = bench.pruner_for(method, model, inputs, report, bench.ARCHS["rssm"])(0.6)
        achieved = 1 - bench.param_count(pruned) / n0
        assert abs(achieved - 0.6) <= 0.05, (method, achieved, info)
        action = RecurrentPlanner(pruned, TINY_PLAN).act_fn(0)(np.zeros((2, 3), dtype=np.float32))
        assert action.shape == (2, 1) and np.all(np.abs(action) <= 2.0)


def test_benchmark_arch_rssm_runs_and_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _benchmark_module()
    arch = bench.ARCHS["rssm"]
    tiny = dataclasses.replace(arch, planner=TINY_PLAN)  # the real planner costs ~1 CPU-s per step here
    monkeypatch.setitem(bench.ARCHS, "rssm", tiny)
    cfg = dataclasses.replace(RSSMTrainConfig(), env_steps=200, seed_steps=200, updates_per_step=0.02)
    train_and_save(tmp_path, cfg, stem="rssm_pendulum_seed7")
    run = ["run", "--arch", "rssm", "--model", str(tmp_path / "rssm_pendulum_seed7.pt"), "--out", str(tmp_path)]
    bench.main([*run, "--episodes", "2", "--fractions", "0.6", "--methods", "torch-pruning,vanilla", "--finetune",
                "none"])  # fmt: skip
    info = json.loads((tmp_path / "runs_seed7.json").read_text())
    assert info["arch"] == "rssm" and info["planner"] == TINY_PLAN.to_dict()
    assert {r["method"] for r in info["runs"]} == {"torch-pruning", "vanilla"}
    assert all(len(r["returns"]) == 2 and r["deter"] <= 64 and abs(r["achieved"] - 0.6) < 0.05 for r in info["runs"])
    bench.main(["render", "--out", str(tmp_path)])
    assert "recurrent (RSSM-style)" in (tmp_path / "control.md").read_text()
