"""The vLLM-shaped connector end to end against a real ems-node, with numpy arrays standing
in for vLLM's paged KV tensors ([2, num_blocks, block_size, heads, head_dim] per layer)."""

import dataclasses
import itertools
import types

import numpy as np
import pytest

import ems
from ems.kv_connector import EmsConnectorConfig, EmsKVConnector, Role

BS, LAYERS, BLOCKS, HEADS, DIM = 16, 4, 32, 2, 64
_ns = itertools.count()


@dataclasses.dataclass
class Request:  # the fields of vllm.v1.request.Request the connector reads
    request_id: str
    prompt_token_ids: list
    lora_request: object = None  # vllm.lora.request.LoRARequest (lora_name, lora_int_id)
    mm_features: list = dataclasses.field(default_factory=list)  # .identifier of each item
    cache_salt: object = None


@dataclasses.dataclass
class NewRequestData:  # vllm.v1.core.sched.output.NewRequestData
    req_id: str
    prompt_token_ids: list
    block_ids: tuple
    num_computed_tokens: int


def scheduler_output(new=(), scheduled=None, cached=None):
    return types.SimpleNamespace(
        scheduled_new_reqs=list(new),
        num_scheduled_tokens=scheduled or {},
        scheduled_cached_reqs=cached,
    )


class Worker:
    """One GPU worker: its own paged KV caches and a connector in the WORKER role."""

    def __init__(self, cfg, client):
        self.caches = {
            f"model.layers.{i}.self_attn": np.zeros((2, BLOCKS, BS, HEADS, DIM), np.float16)
            for i in range(LAYERS)
        }
        self.conn = EmsKVConnector(cfg, Role.WORKER, client=client)
        self.conn.register_kv_caches(self.caches)

    def step(self, meta, compute):
        """One forward pass: load, then per layer 'compute' the KV of `compute` (block id ->
        token ids) and hand the layer to save_kv_layer."""
        self.conn.bind_connector_metadata(meta)
        self.conn.start_load_kv(None)
        for layer, (name, cache) in enumerate(self.caches.items()):
            self.conn.wait_for_layer_load(name)
            for block_id, tokens in compute.items():
                cache[:, block_id] = fake_kv(layer, tokens)
            self.conn.save_kv_layer(name, cache, None)
        self.conn.wait_for_save()
        self.conn.clear_connector_metadata()


def fake_kv(layer, tokens):
    """The 'KV' of a block: a deterministic function of the layer and the prefix's tokens."""
    seed = hash((layer, tuple(tokens))) & 0xFFFFFFFF
    return np.random.default_rng(seed).standard_normal((2, BS, HEADS, DIM)).astype(np.float16)


@pytest.fixture
def cfg(node):
    return EmsConnectorConfig(namespace=f"test/llama/fp16/{next(_ns)}", block_size=BS,
                              address=node.address)


@pytest.fixture
def client(node):
    with ems.Client(node.address) as c:
        yield c


def run_prefill(sched, worker, req, block_ids, local_tokens=0):
    """The scheduler's steps for a new request that is prefilled in one step."""
    n, is_async = sched.get_num_new_matched_tokens(req, local_tokens)
    assert is_async is False
    sched.update_state_after_alloc(req, (block_ids,), n)
    computed = local_tokens + n
    new = NewRequestData(req.request_id, req.prompt_token_ids, (block_ids,), computed)
    meta = sched.build_connector_meta(
        scheduler_output([new], {req.request_id: len(req.prompt_token_ids) - computed})
    )
    prefix = req.prompt_token_ids
    compute = {
        block_ids[b]: prefix[: (b + 1) * BS]
        for b in range(computed // BS, len(prefix) // BS)
    }
    worker.step(meta, compute)
    return n, meta


def test_second_request_loads_the_shared_prefix(cfg, client):
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    w1, w2 = Worker(cfg, client), Worker(cfg, client)
    prompt_a = list(range(1000, 1100))  # 6 full blocks + 4 tokens
    n, meta = run_prefill(sched, w1, Request("a", prompt_a), list(range(7)))
    assert n == 0 and not meta.loads
    assert [len(t.keys) for t in meta.saves] == [6]
    assert w1.conn.stats["saved_blocks"] == 6
    keys_a = ems.PrefixHasher(BS).keys(cfg.namespace + "/rank0", prompt_a)
    assert client.match_prefix(keys_a) == 6

    # B shares A's first 80 tokens (5 blocks) and lands in other GPU blocks on another worker.
    prompt_b = prompt_a[:80] + list(range(5000, 5030))
    blocks_b = list(range(10, 17))
    n, meta = run_prefill(sched, w2, Request("b", prompt_b), blocks_b)
    assert n == 80
    assert [t.block_ids for t in meta.loads] == [blocks_b[:5]]
    assert [t.block_ids for t in meta.saves] == [blocks_b[5:6]]  # only the new full block
    for name in w1.caches:  # every byte of every loaded layer block
        assert np.array_equal(w2.caches[name][:, 10:15], w1.caches[name][:, 0:5]), name
    assert w2.conn.stats["loaded_blocks"] == 5
    assert w2.conn.get_block_ids_with_load_errors() == set()
    assert sched.request_finished(Request("b", prompt_b), blocks_b) == (False, None)


def test_local_hits_and_the_last_token_are_not_loaded(cfg, client):
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    w = Worker(cfg, client)
    prompt = list(range(96))  # exactly 6 blocks
    run_prefill(sched, w, Request("a", prompt), list(range(6)))
    assert w.conn.stats["saved_blocks"] == 6
    # All 6 blocks are stored, but the last token must be recomputed: 5 blocks count.
    assert sched.get_num_new_matched_tokens(Request("b", prompt), 0) == (80, False)
    # vLLM's own prefix cache already has 2 blocks: EMS supplies the next 3.
    w2 = Worker(cfg, client)
    n, meta = run_prefill(sched, w2, Request("c", prompt), list(range(20, 26)), local_tokens=32)
    assert n == 48
    assert [t.block_ids for t in meta.loads] == [[22, 23, 24]]
    assert not meta.saves  # nothing new: every full block is in EMS already
    for name in w.caches:
        assert np.array_equal(w2.caches[name][:, 22:25], w.caches[name][:, 2:5])
        assert not w2.caches[name][:, 20:22].any()  # the local blocks were left alone


def test_chunked_prefill_saves_blocks_as_they_fill(cfg, client):
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    w = Worker(cfg, client)
    prompt = list(range(300, 400))
    req = Request("a", prompt)
    assert sched.get_num_new_matched_tokens(req, 0) == (0, False)
    sched.update_state_after_alloc(req, (list(range(3)),), 0)
    new = NewRequestData("a", prompt, ([0, 1, 2],), 0)
    meta = sched.build_connector_meta(scheduler_output([new], {"a": 40}))  # 2.5 blocks
    assert [t.block_ids for t in meta.saves] == [[0, 1]]
    w.step(meta, {0: prompt[:16], 1: prompt[:32]})
    cached = types.SimpleNamespace(req_ids=["a"], new_block_ids=[([3, 4, 5, 6],)],
                                   num_computed_tokens=[40])
    meta = sched.build_connector_meta(scheduler_output([], {"a": 60}, cached))
    assert [t.block_ids for t in meta.saves] == [[2, 3, 4, 5]]
    w.step(meta, {b: prompt[: (b + 1) * BS] for b in range(2, 6)})
    assert client.match_prefix(ems.PrefixHasher(BS).keys(cfg.namespace + "/rank0", prompt)) == 6


def test_a_block_evicted_after_matching_is_reported(cfg, client):
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    w1, w2 = Worker(cfg, client), Worker(cfg, client)
    prompt = list(range(700, 780))
    run_prefill(sched, w1, Request("a", prompt), list(range(5)))
    req = Request("b", prompt)
    n, _ = sched.get_num_new_matched_tokens(req, 0)
    assert n == 64
    keys = ems.PrefixHasher(BS).keys(cfg.namespace + "/rank0", prompt)
    assert client.remove([keys[2]]) == 1  # gone between the match and the load
    sched.update_state_after_alloc(req, ([8, 9, 10, 11, 12],), n)
    new = NewRequestData("b", prompt, ([8, 9, 10, 11, 12],), n)
    meta = sched.build_connector_meta(scheduler_output([new], {"b": 16}))
    w2.step(meta, {})
    assert w2.conn.get_block_ids_with_load_errors() == {10}
    assert w2.conn.stats["loaded_blocks"] == 3


def test_unreachable_ems_is_a_miss(cfg, node):
    c = ems.Client(node.address, timeout=1)
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=c)
    node.pause()
    try:
        assert sched.get_num_new_matched_tokens(Request("a", list(range(64))), 0) == (0, False)
    finally:
        node.resume()
    c.close()


def test_config_from_a_vllm_config(node):
    vllm_config = types.SimpleNamespace(
        kv_transfer_config=types.SimpleNamespace(
            kv_connector_extra_config={"namespace": "m/fp16", "address": node.address}
        ),
        cache_config=types.SimpleNamespace(block_size=32),
    )
    conn = EmsKVConnector(vllm_config, types.SimpleNamespace(name="SCHEDULER"))
    assert conn.role is Role.SCHEDULER and conn.config.block_size == 32
    conn.close()
    vllm_config.kv_transfer_config.kv_connector_extra_config["adress"] = "typo"
    with pytest.raises(ValueError, match="adress"):
        EmsKVConnector(vllm_config, Role.WORKER)


@pytest.mark.parametrize("resumed_field", ["resumed_from_preemption", "resumed_req_ids"])
def test_a_resumed_preempted_request_loads_its_hits(cfg, client, resumed_field):
    """vLLM resumes a preempted request through get_num_new_matched_tokens and
    update_state_after_alloc again, then schedules it among the *cached* requests (flagged
    resumed: vLLM 0.9-0.11 `resumed_from_preemption`, later `resumed_req_ids`), with
    new_block_ids naming all of its blocks. vLLM counts the EMS hit as computed, so the
    connector must load it there too, into those blocks."""
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    w1, w2 = Worker(cfg, client), Worker(cfg, client)
    prompt = list(range(2000, 2100))  # 6 full blocks + 4 tokens
    run_prefill(sched, w1, Request("a", prompt), list(range(7)))
    # "b" ran before (its state is on the worker), was preempted, and now resumes.
    req = Request("b", prompt)
    n, _ = sched.get_num_new_matched_tokens(req, 0)
    assert n == 96
    blocks = list(range(20, 27))
    sched.update_state_after_alloc(req, (blocks,), n)
    resumed = [True] if resumed_field == "resumed_from_preemption" else {"b"}
    cached = types.SimpleNamespace(req_ids=["b"], new_block_ids=[(blocks,)],
                                   num_computed_tokens=[n], **{resumed_field: resumed})
    meta = sched.build_connector_meta(scheduler_output([], {"b": len(prompt) - n}, cached))
    assert [t.block_ids for t in meta.loads] == [blocks[:6]]
    assert not meta.saves
    w2.step(meta, {})
    for name in w1.caches:
        assert np.array_equal(w2.caches[name][:, 20:26], w1.caches[name][:, 0:6]), name


def test_requests_vllm_keeps_apart_share_no_blocks(cfg, client):
    """vLLM's own prefix cache hashes the LoRA adapter, the multimodal inputs and the
    cache_salt with the token ids: under another adapter the same tokens have other KV, two
    images sit behind the same placeholder token ids, and a salt keeps tenants apart. EMS
    must not hand such a request the blocks of a plain one, nor of each other."""
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    w = Worker(cfg, client)
    prompt = list(range(4000, 4100))  # 6 full blocks + 4 tokens
    run_prefill(sched, w, Request("plain", prompt), list(range(7)))
    assert sched.get_num_new_matched_tokens(Request("plain2", prompt), 0) == (96, False)
    lora = types.SimpleNamespace(lora_name="sql-adapter", lora_int_id=1)
    image = types.SimpleNamespace(identifier="3f2a9c-image-hash")
    apart = {
        "lora": Request("l", prompt, lora_request=lora),
        "image": Request("i", prompt, mm_features=[image]),
        "salt": Request("s", prompt, cache_salt="tenant-b"),
    }
    for name, req in apart.items():
        assert sched.get_num_new_matched_tokens(req, 0) == (0, False), name
    # A request shares with its own kind: same adapter, same image, same salt.
    for name, req in apart.items():
        run_prefill(sched, w, req, list(range(10, 17)))
        again = dataclasses.replace(req, request_id=req.request_id + "2")
        assert sched.get_num_new_matched_tokens(again, 0) == (96, False), name
    other = types.SimpleNamespace(lora_name="chat-adapter", lora_int_id=2)
    assert sched.get_num_new_matched_tokens(Request("l3", prompt, lora_request=other), 0) == (
        0, False)


class RecordingClient:
    """An ems.Client that records the parents each batch_put names."""

    def __init__(self, client):
        self.client, self.parents = client, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def batch_put(self, keys, values, parents=None):
        self.parents.append(dict(zip(keys, parents or [None] * len(keys))))
        return self.client.batch_put(keys, values, parents)


def test_saves_name_each_blocks_own_parent(cfg, client):
    """A put names the previous block of its own prompt as parent (the prefix eviction policy
    keeps a parent while its children are cached): not the last block of another request
    saved in the same step, and not none when the chain continues from an earlier step."""
    sched = EmsKVConnector(cfg, Role.SCHEDULER, client=client)
    rec = RecordingClient(client)
    w = Worker(cfg, rec)
    a, b = list(range(5000, 5100)), list(range(6000, 6100))
    keys_a = ems.PrefixHasher(BS).keys(cfg.namespace + "/rank0", a)
    keys_b = ems.PrefixHasher(BS).keys(cfg.namespace + "/rank0", b)
    for req in (Request("a", a), Request("b", b)):
        assert sched.get_num_new_matched_tokens(req, 0) == (0, False)
    sched.update_state_after_alloc(Request("a", a), ([0, 1, 2, 3, 4, 5, 6],), 0)
    sched.update_state_after_alloc(Request("b", b), ([10, 11, 12],), 0)
    new = [NewRequestData("a", a, ([0, 1, 2, 3, 4, 5, 6],), 0),
           NewRequestData("b", b, ([10, 11, 12],), 0)]
    meta = sched.build_connector_meta(scheduler_output(new, {"a": 100, "b": 40}))  # b chunked
    w.step(meta, {})
    cached = types.SimpleNamespace(req_ids=["b"], new_block_ids=[([13, 14, 15, 16],)],
                                   num_computed_tokens=[40])
    meta = sched.build_connector_meta(scheduler_output([], {"b": 60}, cached))
    w.step(meta, {})
    assert w.conn.stats["saved_blocks"] == 12
    want = [None] + keys_a[:5]
    assert [rec.parents[0][k] for k in keys_a] == want
    assert rec.parents[0][keys_b[0]] is None and rec.parents[0][keys_b[1]] == keys_b[0]
    assert [rec.parents[1][k] for k in keys_b[2:]] == keys_b[1:5]
