"""Checks that admission_bound.py models what docs/replay.md says it models."""
import json
import os
import subprocess

import pytest

import admission_bound as ab

TRACE = os.path.join(os.environ.get("EMS_TRACES", ""), "synthetic_trace.jsonl")
needs_trace = pytest.mark.skipif(not os.path.exists(TRACE), reason="no shared traces")


def load(limit=None):
    with open(TRACE) as f:
        return [json.loads(line)["hash_ids"] for line in f if line.strip()][:limit]


@needs_trace
def test_its_lru_is_the_pools_lru_within_half_a_point():
    # The model is leaf-first LRU; the pool's LRU may evict a parent before its child, which
    # strands the child, so the two differ a little, never by much.
    out = subprocess.run(
        [os.path.join(os.environ["EMS_BIN_DIR"], "ems-bench"), "replay", "--simulate",
         "--trace", TRACE, "--policies", "lru", "--capacities", "5000", "--json"],
        check=True, capture_output=True, text=True).stdout
    pool = json.loads(out.splitlines()[-1])["prefix_hit_ratio"]
    model = ab.prefix_hit_ratio(load(), 5000)
    assert abs(model - pool) < 0.005, (model, pool)


@needs_trace
def test_online_rates_use_only_the_past():
    requests = load(2000)
    half = len(requests) // 2
    other = requests[:half] + [[10**9 + i] for i in range(half)]  # a different future
    a = ab.online(requests, ab.signals(requests))
    b = ab.online(other, ab.signals(other))
    # Centred on each run's mean, so compare the order of the first half's scores.
    keys = sorted(k for k in a if k[0] < half)
    assert keys and keys == sorted(k for k in b if k[0] < half)
    rank = lambda s: sorted(keys, key=lambda k: (s[k], k))
    assert rank(a) == rank(b)


def test_a_fitted_rate_is_the_reuse_rate_of_its_signal_class():
    # Request 0 inserts 1,2; request 1 reuses 1 and inserts 3. Blocks 1 and 2 share nothing
    # but the request's new-block count, so the classes differ by position and depth.
    requests = [[1, 2], [1, 3], [1, 3]]
    sig, label = ab.signals(requests), ab.reused(requests)
    assert label == {(0, 0): 1, (0, 1): 0, (1, 1): 1}
    fitted = ab.fitted(sig, label)
    mean = 2 / 3
    assert fitted[(0, 0)] == pytest.approx(1 - mean)
    assert fitted[(0, 1)] == pytest.approx(0 - mean)


def test_auc_counts_pairs_ranked_right_and_ties_as_half():
    label = {"a": 1, "b": 1, "c": 0, "d": 0}
    # Pairs (reused, not): a>c, a>d, b=c (half), b>d: 3.5 of 4.
    assert ab.auc(label, {"a": 3, "b": 1, "c": 1, "d": 0}) == pytest.approx(3.5 / 4)
    assert ab.auc(label, {"a": 0, "b": 0, "c": 1, "d": 1}) == 0


@pytest.mark.parametrize("target", [0.6, 0.8, 0.95])
def test_a_noisy_oracle_ranks_with_the_auc_it_was_asked_for(target):
    label = {i: int(i % 4 == 0) for i in range(40000)}  # a quarter reused, like the traces
    score = ab.noisy_oracle(label, target)
    assert ab.auc(label, score) == pytest.approx(target, abs=0.01)
    # A reuse probability, centred: higher for reused blocks on average.
    assert sum(score.values()) == pytest.approx(0, abs=1e-9)
    assert sum(score[i] for i in label if label[i]) > 0
