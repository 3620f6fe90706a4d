#!/usr/bin/env python3
"""How far can admission signals take an eviction policy on a Mooncake trace?

A throwaway-sized model, not the pool's code (that is `ems-bench replay --simulate`): one
cache, the replay's prefix semantics (docs/replay.md), leaf-first LRU, plus two offsets to a
leaf's last-use tick, both in caches' worth of block uses:
  - hit:   a block that was hit (or requested again) competes as this much younger;
  - admit: a block not yet hit is moved by admit x (p - mean p), where p is the reuse rate of
    blocks inserted with the same signals.
The signals are those a client knows when it puts a request's new blocks: how many new blocks
the request has (log2 bucket), the block's position from the request's end, its depth (log2
bucket) and how many leading blocks hit. p comes either from counts of the past only (what a
pool could learn online) or from the whole trace it is scored on ("fitted": an upper bound
for any model of these signals, since it has seen the answers).

How good would a predictor have to be? `--oracle-aucs 0.8,0.9` adds noisy oracles: each block's
true answer (reused or not) seen through Gaussian noise set so that the score ranks reused
blocks above never-reused ones with the given AUC (0.5 is chance, 1 the oracle), turned into a
reuse probability the same way as the rates above. Every variant's AUC is printed beside it,
so signals and oracles sit on one axis.

Usage: admission_bound.py TRACE.jsonl [--capacities 10000,20000] [--oracle-aucs 0.8,0.9]
Prints, per capacity, the best prefix hit ratio over a small grid of offsets for each variant.
"""
import argparse
import collections
import heapq
import json
import math
import random
import statistics

HIT_GRID = [0.5, 1, 2, 4]
ADMIT_GRID = [2, 4, 6, 8, 12, 25, 100]


def signals(requests):
    """(request, position) of each block's first insertion -> its signals."""
    seen, out = set(), {}
    for r, ids in enumerate(requests):
        lead = 0
        while lead < len(ids) and ids[lead] in seen:
            lead += 1
        fresh = sum(1 for i in ids if i not in seen)
        for j, i in enumerate(ids):
            if i not in seen:
                out[(r, j)] = (min(int(math.log2(fresh + 1)), 8), min(len(ids) - 1 - j, 6),
                               min(int(math.log2(j + 1)), 5), min(lead, 4))
        seen.update(ids)
    return out


def reused(requests):
    """(request, position) of each block's first insertion -> 1 if a later request has it."""
    first, out = {}, {}
    for r, ids in enumerate(requests):
        for j, i in enumerate(ids):
            if i in first:
                out[first[i]] = 1
            else:
                first[i] = (r, j)
                out[(r, j)] = 0
    return out


def fitted(sig, label):
    n, k = collections.Counter(), collections.Counter()
    for key, s in sig.items():
        n[s] += 1
        k[s] += label[key]
    mean = sum(label.values()) / len(label)
    return {key: k[s] / n[s] - mean for key, s in sig.items()}


def online(requests, sig):
    """p from blocks inserted earlier whose first reuse has been seen by now."""
    pending, n, k, p = {}, collections.Counter(), collections.Counter(), {}
    for r, ids in enumerate(requests):
        for i in ids:
            if i in pending:
                k[pending.pop(i)] += 1
        for j, i in enumerate(ids):
            if (r, j) in sig:
                s = sig[(r, j)]
                p[(r, j)] = (k[s] + 1) / (n[s] + 2)
                n[s] += 1
                pending[i] = s
    mean = sum(p.values()) / len(p)
    return {key: v - mean for key, v in p.items()}


def noisy_oracle(label, target_auc, seed=1):
    """Reuse probabilities from the answers seen through noise: x = d * answer + N(0, 1), with
    d chosen so that x ranks reused above never-reused blocks with AUC target_auc; p is the
    posterior P(reused | x) under the trace's mean reuse rate."""
    d = math.sqrt(2) * statistics.NormalDist().inv_cdf(target_auc)
    prior = sum(label.values()) / len(label)
    rng = random.Random(seed)
    p = {}
    for key in sorted(label):
        x = d * label[key] + rng.gauss(0, 1)
        odds = prior / (1 - prior) * math.exp(min(d * x - d * d / 2, 700))
        p[key] = odds / (1 + odds)
    mean = sum(p.values()) / len(p)
    return {key: v - mean for key, v in p.items()}


def auc(label, score):
    """P(a reused block scores above a never-reused one), ties counting half."""
    ranked = sorted((score[key], label[key]) for key in label)
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(r[1] for r in ranked[i:j])  # mean rank of the tie
        i = j
    pos = sum(label.values())
    return (rank_sum - pos * (pos + 1) / 2) / (pos * (len(label) - pos))


def prefix_hit_ratio(requests, capacity, score=None, admit=0.0, hit=0.0):
    cached, parent, children = set(), {}, collections.Counter()
    priority, was_hit, heap = {}, set(), []
    tick = hits = total = 0
    for r, ids in enumerate(requests):
        lead = 0
        while lead < len(ids) and ids[lead] in cached:
            lead += 1
        hits += lead
        total += len(ids)
        for j, i in enumerate(ids):
            tick += 1
            if i in cached:
                was_hit.add(i)
            else:
                if i in parent:  # inserted before, evicted, requested again
                    was_hit.add(i)
                cached.add(i)
                parent[i] = ids[j - 1] if j > 0 else None
                if parent[i] in cached:
                    children[parent[i]] += 1
            p = tick + (hit * capacity if i in was_hit else 0)
            if i not in was_hit and score is not None:
                p += admit * capacity * score.get((r, j), 0)
            priority[i] = p
            if children[i] == 0:
                heapq.heappush(heap, (p, i))
        while len(cached) > capacity:
            p, i = heapq.heappop(heap)
            if i not in cached or children[i] or priority[i] != p:
                continue  # stale entry
            cached.discard(i)
            up = parent[i]
            if up in cached:
                children[up] -= 1
                if children[up] == 0:
                    heapq.heappush(heap, (priority[up], up))
    return hits / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--capacities", default="10000,20000")
    ap.add_argument("--oracle-aucs", default="", help="comma-separated AUCs of noisy oracles")
    args = ap.parse_args()
    requests = [json.loads(line)["hash_ids"] for line in open(args.trace) if line.strip()]
    sig, label = signals(requests), reused(requests)
    variants = {"online": online(requests, sig), "fitted": fitted(sig, label)}
    for a in (float(a) for a in args.oracle_aucs.split(",") if a):
        variants[f"oracle {a:g}"] = noisy_oracle(label, a)
    print("AUC", "  ".join(f"{k} {auc(label, v):.3f}" for k, v in variants.items()), flush=True)
    for capacity in (int(c) for c in args.capacities.split(",")):
        row = {"lru": prefix_hit_ratio(requests, capacity),
               "hit only": max(prefix_hit_ratio(requests, capacity, hit=h) for h in HIT_GRID)}
        for name, score in variants.items():
            row[name] = max(prefix_hit_ratio(requests, capacity, score, a, h)
                            for a in ADMIT_GRID for h in HIT_GRID)
        print(capacity, "  ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
