"""The control benchmark's parts: environment loop, TD-MPC training step, latent planner, pruning calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

pytest.importorskip("gymnasium")

from edgeprune.control import (
    Planner,
    PlannerConfig,
    Replay,
    TrainConfig,
    finetune,
    random_act_fn,
    rollout,
    tdmpc_losses,
    train,
)
from edgeprune.control.planner import policy_act_fn
from edgeprune.control.train import Learner
from edgeprune.models.tdmpc import TDMPCStyle
from edgeprune.prune import sensitivity

SMALL = {"obs_dim": 3, "action_dim": 1, "latent_dim": 16, "hidden_dim": 32}
FAST_PLAN = PlannerConfig(horizon=3, iterations=2, num_samples=16, num_pi=4, num_elites=4)


def test_rollout_runs_and_records() -> None:
    returns, trace = rollout(random_act_fn(1), [5, 6, 7], max_steps=20, record=True)
    assert returns.shape == (3,) and np.all(returns <= 0)  # Pendulum rewards are ≤ 0
    assert trace["obs"].shape == (3, 21, 3)
    assert trace["action"].shape == (3, 20, 1) and np.all(np.abs(trace["action"]) <= 2.0)
    np.testing.assert_allclose(trace["reward"].sum(1), returns, rtol=1e-5)
    again = rollout(random_act_fn(1), [5, 6, 7], max_steps=20)
    np.testing.assert_array_equal(returns, again)  # seeded: repeatable


def test_replay_sample_shapes_and_roundtrip(replay: Replay, tmp_path: Path) -> None:
    obs, act, rew = replay.sample(8, 3, np.random.default_rng(0))
    assert obs.shape == (4, 8, 3) and act.shape == (3, 8, 1) and rew.shape == (3, 8)
    replay.save(tmp_path / "r.npz")
    again = Replay.load(tmp_path / "r.npz")
    assert again.transitions == replay.transitions == 400
    np.testing.assert_array_equal(again.obs[1], replay.obs[1])


def test_training_steps_reduce_the_losses(replay: Replay) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=32, model=SMALL)
    learner = Learner(TDMPCStyle(**SMALL), cfg)
    held_out = replay.sample(256, cfg.horizon, np.random.default_rng(123))

    def losses() -> dict[str, float]:
        with torch.no_grad():
            out = tdmpc_losses(learner.model, learner.target, *held_out, cfg)
        return {k: float(v) for k, v in out.items() if k != "zs"}

    before = losses()
    rng = np.random.default_rng(0)
    for _ in range(100):
        step = learner.update(replay.sample(cfg.batch_size, cfg.horizon, rng))
    after = losses()
    assert np.isfinite(step["policy"])
    assert after["total"] < 0.5 * before["total"], (before, after)
    assert after["reward"] < before["reward"] and after["value"] < before["value"]


def test_train_end_to_end_tiny_and_repeatable() -> None:
    cfg = TrainConfig(env_steps=400, seed_steps=200, batch_size=32, updates_per_step=0.1, eval_every=1, model=SMALL)
    result = train(cfg)
    assert result.replay.transitions == 400
    assert len(result.curve["train_return"]) == 2 and len(result.curve["eval_return"]) == 2
    losses = result.curve["losses"]
    assert all(np.isfinite(losses[k]).all() for k in ("consistency", "reward", "value", "policy"))
    assert result.cpu_seconds > 0
    again = train(cfg)  # seeded: the same run gives the same weights
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in result.model.state_dict().items())


def test_planner_bounds_and_determinism() -> None:
    torch.manual_seed(0)
    model = TDMPCStyle(**SMALL)
    planner = Planner(model, FAST_PLAN, action_high=2.0)
    obs = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)

    def run(seed: int) -> np.ndarray:
        act = planner.act_fn(seed)
        return np.stack([act(obs) for _ in range(3)])  # warm start carried between steps

    a = run(7)
    assert a.shape == (3, 3, 1) and a.dtype == np.float32
    assert np.all(np.abs(a) <= 2.0) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, run(7))
    assert not np.array_equal(a, run(8))


def test_planner_closes_the_loop() -> None:
    torch.manual_seed(0)
    planner = Planner(TDMPCStyle(**SMALL), FAST_PLAN)
    returns = rollout(planner.act_fn(0), [0, 1], max_steps=10)
    assert returns.shape == (2,) and np.isfinite(returns).all()
    assert np.isfinite(rollout(policy_act_fn(TDMPCStyle(**SMALL)), [0], max_steps=5)).all()


def test_finetune_returns_a_trained_copy(replay: Replay) -> None:
    torch.manual_seed(0)
    model = TDMPCStyle(**SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned, summary = finetune(model, replay, 40, TrainConfig(batch_size=32, model=SMALL), seed=0)
    assert tuned is not model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert summary["last_total"] < summary["first_total"]


def _benchmark_module():
    return load_benchmark("control")


@pytest.fixture(scope="module")
def bench_sensitivity():
    """The benchmark's model and a sensitivity report (the proxy: cheap; component+sens measures closed-loop return)."""
    bench = _benchmark_module()
    torch.manual_seed(0)
    model = TDMPCStyle().eval()  # the benchmark's model size
    inputs = model.example_inputs()
    return bench, model, inputs, sensitivity(model, model.example_inputs(64))


@pytest.mark.parametrize("fraction", [0.2, 0.6, 0.8])
def test_benchmark_pruning_calls_hit_the_size_and_still_plan(bench_sensitivity, fraction: float) -> None:
    bench, model, inputs, report = bench_sensitivity
    n0 = bench.param_count(model)
    obs = np.zeros((2, 3), dtype=np.float32)
    for method in bench.ALL_METHODS:
        pruned, info = bench.pruner_for(method, model, inputs, report, bench.ARCHS["tdmpc"])(fraction)
        achieved = 1 - bench.param_count(pruned) / n0
        assert abs(achieved - fraction) <= 0.05, (method, fraction, achieved, info)
        action = Planner(pruned, FAST_PLAN).act_fn(0)(obs)
        assert action.shape == (2, 1) and np.all(np.abs(action) <= 2.0)


def test_ci95() -> None:
    bench = _benchmark_module()
    mean, half = bench.ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0 and half == pytest.approx(2.776 * np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5))


def _linears(seq: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.Linear) for m in seq)


def test_depth_option_and_the_bundled_weights_still_load() -> None:
    from edgeprune.control.pretrained import pretrained_tdmpc
    from edgeprune.errors import EdgepruneError

    bundled = TDMPCStyle()  # default: the bundled shape, encoder 1 hidden layer, the others 2
    assert _linears(bundled.encoder) == 2 and all(
        _linears(c) == 3 for c in (bundled.dynamics, bundled.reward, bundled.policy, *bundled.qs)
    )
    assert sum(p.numel() for p in pretrained_tdmpc().parameters()) == 116_420  # strict state-dict load
    deep = TDMPCStyle(**SMALL, depth=3)
    assert all(_linears(c) == 4 for c in (deep.encoder, deep.dynamics, deep.reward, deep.policy, *deep.qs))
    assert deep.pruning_constraints().ties == [("dynamics.9", "encoder.9")]  # the latent layers, found by depth
    with pytest.raises(EdgepruneError, match="depth 0"):
        TDMPCStyle(depth=0)


def test_benchmark_reads_the_shape_back_from_the_train_json(tmp_path: Path) -> None:
    import json

    bench = _benchmark_module()
    config = {**SMALL, "depth": 3}
    torch.manual_seed(0)
    torch.save(TDMPCStyle(**config).state_dict(), tmp_path / "tdmpc_pendulum_w32d3_seed0.pt")
    with pytest.raises(SystemExit, match=r"train\.json not found"):
        bench.load_trained(str(tmp_path / "tdmpc_pendulum_w32d3_seed0.pt"), bench.ARCHS["tdmpc"])
    (tmp_path / "tdmpc_pendulum_w32d3_seed0_train.json").write_text(json.dumps({"config": {"model": config}}))
    model, _, cfg = bench.load_trained(str(tmp_path / "tdmpc_pendulum_w32d3_seed0.pt"), bench.ARCHS["tdmpc"])
    read = cfg.model
    assert read == config and _linears(model.encoder) == 4 and model.encoder[0].out_features == 32
    assert bench.shape_tag(bench.shape_of(read)) == "w32d3"
    old = {"obs_dim": 3, "action_dim": 1, "latent_dim": 32, "hidden_dim": 128}  # train JSONs from before depth
    assert bench.shape_tag(bench.shape_of(old)) == ""
    groups = bench.by_shape([{"model": "seed1"}, {"model": "w32d3_seed0", "model_config": config}])
    assert {k: [i["model"] for i in v] for k, v in groups.items()} == {"": ["seed1"], "w32d3": ["w32d3_seed0"]}


def test_sensitivity_metric_values_persist_so_a_killed_measurement_resumes(tmp_path: Path) -> None:
    bench = _benchmark_module()
    torch.manual_seed(0)
    a, b = TDMPCStyle(**SMALL).eval(), TDMPCStyle(**SMALL).eval()
    calls: list[int] = []

    def metric(m) -> float:
        calls.append(1)
        return float(sum(p.sum() for p in m.parameters()))

    path, context = tmp_path / "progress.json", {"seeds": [1, 2]}
    first = bench.persisted(metric, path, context)
    value = first(a)
    assert first(a) == value and len(calls) == 1  # one measurement per weights
    resumed = bench.persisted(metric, path, context)  # a new process after a kill
    assert resumed(a) == value and len(calls) == 1
    assert resumed(b) != value and len(calls) == 2
    bench.persisted(metric, path, {"seeds": [3]})(a)  # other seeds: measured again
    assert len(calls) == 3


def test_render_pools_models_marks_partial_cells_and_skips_empty_rows() -> None:
    bench = _benchmark_module()

    def run(method: str, finetune: bool, fraction: float, returns: list[float]) -> dict:
        return {"method": method, "finetune": finetune, "fraction": fraction, "achieved": fraction, "latent": 32,
                "returns": returns}  # fmt: skip

    def info(name: str, runs: list[dict]) -> dict:
        return {"model": name, "arch": "tdmpc", "model_config": {**SMALL, "depth": 3}, "params": 1,
                "eval_seeds": [0, 1], "commands": [], "seconds": 60.0,
                "baseline": {"planner": [-100.0, -100.0], "random": [-1100.0, -1100.0]}, "runs": runs}  # fmt: skip

    infos = [
        info("a", [run("torch-pruning", False, 0.6, [-600.0, -600.0]), run("component+sens", False, 0.6, [-100.0] * 2),
                   run("torch-pruning", True, 0.8, [-1100.0] * 2)]),
        info("b", [run("torch-pruning", False, 0.6, [-1100.0, -1100.0])]),
    ]  # fmt: skip
    text = bench.markdown(infos)
    without, with_ft = text.split("## Without fine-tune")[1].split("## With fine-tune")
    # torch-pruning pools both models: normalized 0.5, 0.5, 0, 0 -> 0.25; component+sens only model a.
    assert "| 60% | 0.25 ± " in without and "1.00 ± 0.00 (-100) [1 of 2 models]" in without
    assert "| 80% |" not in without  # nobody ran 80 % without fine-tune: no empty row
    assert "| 60% |" not in with_ft and "| 80% | 0.00 ± 0.00 (-1100) [1 of 2 models]" in with_ft


def test_render_sets_the_predicted_drop_of_a_sensitivity_split_beside_the_measured_one() -> None:
    from edgeprune.prune.sensitivity import Cut, Item, SensitivityReport

    bench = _benchmark_module()
    items = [Item("a", "component", 100, [Cut(0.5, 50, 100.0)]), Item("b", "component", 100, [Cut(0.5, 50, 300.0)])]
    report = SensitivityReport("return", -100.0, 200, items)
    run = {"method": "component+sens", "finetune": False, "fraction": 0.5, "achieved": 0.5, "latent": 32,
           "returns": [-600.0, -700.0], "components_removed": {"a": 0.5, "b": 0.5}}  # fmt: skip
    info = {"model": "m", "sensitivity": report.to_dict(), "runs": [run],
            "baseline": {"planner": [-100.0, -100.0], "random": [-1100.0, -1100.0]}}  # fmt: skip
    rows = [line for line in bench.prediction_table([info]) if line.startswith("| m |")]
    # predicted 100 + 300 = 400 (normalized 0.60); measured -100 - (-650) = 550 (0.45)
    assert rows == ["| m | 50% | a 50%, b 50% | 400 | 550 | 0.60 | 0.45 |"]
    assert bench.prediction_table([{**info, "sensitivity": None}]) == []
