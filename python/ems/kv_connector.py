"""A vLLM-style KV connector (the KVConnectorBase_V1 shape) that keeps KV blocks in EMS.

vLLM splits a connector in two halves that run in different processes:

* scheduler side: ``get_num_new_matched_tokens`` (how many prompt tokens EMS can supply: one
  MatchPrefix per request), ``update_state_after_alloc`` (which GPU blocks the hits land in),
  ``build_connector_meta`` (per step: what each worker loads and saves), ``request_finished``;
* worker side: ``register_kv_caches``, ``bind_connector_metadata``, ``start_load_kv`` (read the
  hits into the paged KV cache), ``wait_for_layer_load``, ``save_kv_layer`` (called per layer as
  the forward pass produces KV), ``wait_for_save`` and ``get_finished``.

One EMS block holds one vLLM block (``block_size`` tokens) for every layer: the bytes of
``kv_caches[layer][:, block_id]`` (or ``[block_id]`` for caches without the leading K/V axis)
for each layer in registration order. Its key is ``(namespace, chained prefix digest)``, so
any engine that runs the same model with the same layout shares it. Like vLLM's own prefix
cache, the digest also covers the request's LoRA adapter, multimodal inputs and cache salt.

Tensors are handled as numpy arrays (CPU torch tensors give one with ``.numpy()`` at no cost);
on a GPU the two copy helpers at the bottom become device<->pinned-host copies. See
docs/python.md for how to register it with vLLM.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import json
import logging
from typing import Any, Iterable, Optional, Sequence

import numpy as np

import ems

log = logging.getLogger("ems.kv_connector")

try:  # Subclass vLLM's base when vLLM is installed, so isinstance checks in vLLM hold.
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (  # type: ignore
        KVConnectorBase_V1 as _Base,
    )
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (  # type: ignore
        KVConnectorMetadata as _MetadataBase,
    )
except ImportError:  # pragma: no cover - the tests run without vLLM
    _Base = object
    _MetadataBase = object


class Role(enum.Enum):
    """Mirrors vllm's KVConnectorRole; any object whose ``name`` matches is accepted."""

    SCHEDULER = 0
    WORKER = 1


@dataclasses.dataclass
class EmsConnectorConfig:
    """Settings; from vLLM they come from ``kv_transfer_config.kv_connector_extra_config``."""

    namespace: str  # model id, KV dtype, parallel layout, e.g. "llama3-8b/bf16/tp2"
    block_size: int  # tokens per vLLM block
    address: str = ""  # one ems-node, or
    controller: str = ""  # ems-controller (cluster mode)
    local_socket: str = ""
    hash_algorithm: str = "xxh3"
    rank: int = 0  # tensor-parallel rank: each rank stores its own shard of the heads
    timeout: float = 10.0

    @staticmethod
    def from_vllm_config(vllm_config: Any) -> "EmsConnectorConfig":
        extra = dict(vllm_config.kv_transfer_config.kv_connector_extra_config or {})
        extra.setdefault("block_size", vllm_config.cache_config.block_size)
        fields = {f.name for f in dataclasses.fields(EmsConnectorConfig)}
        unknown = set(extra) - fields
        if unknown:
            raise ValueError(f"kv_connector_extra_config: unknown keys {sorted(unknown)}")
        return EmsConnectorConfig(**extra)


@dataclasses.dataclass
class Transfer:
    """Blocks of one request to move in one step: keys[i] <-> GPU block block_ids[i]."""

    req_id: str
    keys: list
    block_ids: list
    parent: Any = None  # saves: the key of the block before keys[0] in the prompt, if any


@dataclasses.dataclass
class EmsConnectorMetadata(_MetadataBase):  # type: ignore[misc]
    """What the scheduler tells every worker for one step."""

    loads: list = dataclasses.field(default_factory=list)
    saves: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _RequestState:
    keys: list  # keys of the full blocks of the prompt
    matched: int  # leading blocks EMS holds
    local_tokens: int = 0  # tokens vLLM's own prefix cache supplies
    block_ids: list = dataclasses.field(default_factory=list)
    load_blocks: int = 0  # blocks to load this step (set in update_state_after_alloc)
    saved: int = 0  # blocks stored or known to be stored


def _block_ids(blocks: Any) -> list:
    """vLLM passes KVCacheBlocks (get_block_ids() -> one list per KV cache group) or lists."""
    if hasattr(blocks, "get_block_ids"):
        blocks = blocks.get_block_ids()
    if isinstance(blocks, tuple) or (blocks and isinstance(blocks[0], (list, tuple))):
        blocks = blocks[0]  # the first (full-attention) group
    return list(blocks)


def _resumed_req_ids(cached: Any) -> set:
    """Cached requests that resume after preemption: vLLM 0.9-0.11 flag each one in
    ``resumed_from_preemption``, later versions list them in ``resumed_req_ids``."""
    ids = getattr(cached, "resumed_req_ids", None)
    if ids is not None:
        return set(ids)
    flags = getattr(cached, "resumed_from_preemption", None) or []
    return {r for r, f in zip(getattr(cached, "req_ids", []) or [], flags) if f}


def _hash_extra(request: Any) -> bytes:
    """What vLLM's own prefix cache hashes besides the token ids (the extra keys of
    vllm.v1.core.kv_cache_utils): the LoRA adapter, the multimodal inputs (their placeholder
    token ids are the same for every image) and the cache salt. It goes into every block's
    digest, so requests that vLLM keeps apart never share EMS blocks; b"" for a plain request,
    whose keys stay ``PrefixHasher.keys(ns, tokens)``."""
    parts = []
    lora = getattr(request, "lora_request", None)
    if lora is not None:
        parts.append(["lora", str(getattr(lora, "lora_name", lora))])
    features = getattr(request, "mm_features", None)
    if features:  # vLLM >= 0.10.2; before, mm_hashes
        hashes = [getattr(f, "identifier", None) or getattr(f, "mm_hash", None) for f in features]
    else:
        hashes = getattr(request, "mm_hashes", None) or []
    parts += [["mm", str(h)] for h in hashes]
    salt = getattr(request, "cache_salt", None)
    if salt:
        parts.append(["salt", str(salt)])
    return json.dumps(parts).encode() if parts else b""


class EmsKVConnector(_Base):  # type: ignore[misc,valid-type]
    """KV connector over EMS. One object per role; not thread-safe (vLLM calls it from one
    thread per process), except that puts run on a private thread between ``save_kv_layer``
    of the last layer and ``wait_for_save``."""

    def __init__(self, vllm_config: Any, role: Any, client: Optional[ems.Client] = None):
        cfg = (
            vllm_config
            if isinstance(vllm_config, EmsConnectorConfig)
            else EmsConnectorConfig.from_vllm_config(vllm_config)
        )
        if _Base is not object and not isinstance(vllm_config, EmsConnectorConfig):
            super().__init__(vllm_config=vllm_config, role=role)  # pragma: no cover
        if cfg.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {cfg.block_size}")
        self.config = cfg
        self.role = Role[getattr(role, "name", role)] if not isinstance(role, Role) else role
        self._hasher = ems.PrefixHasher(cfg.block_size, cfg.hash_algorithm)
        self._client = client or ems.Client(
            cfg.address,
            controller=cfg.controller,
            local_socket=cfg.local_socket,
            timeout=cfg.timeout,
        )
        # Scheduler state.
        self._requests: dict[str, _RequestState] = {}
        # Worker state.
        self._caches: dict[str, np.ndarray] = {}
        self._layer_index: dict[str, int] = {}
        self._block_bytes = 0  # bytes of one block in one layer
        self._metadata: Optional[EmsConnectorMetadata] = None
        self._save_staging: Optional[np.ndarray] = None
        self._save_keys: list = []
        self._save_parents: list = []
        self._save_blocks: list = []
        self._save_future: Optional[concurrent.futures.Future] = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "ems-save")
        self._load_errors: set = set()
        self.stats = {"loaded_blocks": 0, "saved_blocks": 0, "load_errors": 0, "save_errors": 0}

    # ---- scheduler side ----------------------------------------------------------------

    def _keys(self, tokens: Sequence[int], extra: bytes = b"", ns: Optional[str] = None) -> list:
        return self._hasher.keys(ns or self._namespace(0), tokens, extra)

    def _namespace(self, rank: int) -> str:
        return f"{self.config.namespace}/rank{rank}"

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int) -> tuple:
        """(tokens EMS can supply beyond the ``num_computed_tokens`` vLLM already has, False:
        loads are synchronous). The last prompt token is always recomputed (vLLM needs its
        logits), so only full blocks of the first len-1 tokens count. One MatchPrefix per call;
        an unreachable EMS is a miss, not an error."""
        tokens = list(request.prompt_token_ids)
        usable = (len(tokens) - 1) // self.config.block_size
        # Every full block is matched (so a fully stored prompt is not saved again); only the
        # usable ones are offered to vLLM.
        keys = self._keys(tokens, _hash_extra(request))
        try:
            matched = self._client.match_prefix(keys) if keys else 0
        except ems.EmsError as e:
            log.warning("EMS match_prefix for %s failed, treating as a miss: %s",
                        request.request_id, e)
            matched = 0
        # Blocks EMS already holds are never saved again; later full blocks are saved as they
        # fill (including ones vLLM's own prefix cache supplied).
        self._requests[request.request_id] = _RequestState(
            keys=keys, matched=matched, local_tokens=num_computed_tokens, saved=matched
        )
        hit = min(matched, usable) * self.config.block_size
        return max(0, hit - num_computed_tokens), False

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int):
        state = self._requests.get(request.request_id)
        if state is None:
            return
        state.block_ids = _block_ids(blocks)
        state.load_blocks = num_external_tokens // self.config.block_size

    def build_connector_meta(self, scheduler_output: Any) -> EmsConnectorMetadata:
        meta = EmsConnectorMetadata()
        scheduled = scheduler_output.num_scheduled_tokens
        for new in getattr(scheduler_output, "scheduled_new_reqs", []):
            state = self._requests.get(new.req_id)
            if state is None:
                continue
            state.block_ids = _block_ids(new.block_ids)
            self._add_loads(meta, new.req_id, state)
            done = new.num_computed_tokens + scheduled[new.req_id]
            self._add_saves(meta, new.req_id, state, done)
        cached = getattr(scheduler_output, "scheduled_cached_reqs", None)
        resumed = _resumed_req_ids(cached)
        for i, req_id in enumerate(getattr(cached, "req_ids", []) or []):
            state = self._requests.get(req_id)
            if state is None:
                continue
            new_ids = cached.new_block_ids[i]
            if req_id in resumed:
                # Back from preemption: new_block_ids are all of its blocks, and vLLM counts
                # the EMS hit matched again as computed, so it is loaded like a new request's.
                state.block_ids = _block_ids(new_ids) if new_ids else []
                self._add_loads(meta, req_id, state)
            elif new_ids:
                state.block_ids.extend(_block_ids(new_ids))
            self._add_saves(meta, req_id, state, cached.num_computed_tokens[i] + scheduled[req_id])
        return meta

    def _add_loads(self, meta, req_id, state) -> None:
        """Loads the EMS hit that update_state_after_alloc reported, after vLLM's local hit."""
        if state.load_blocks:
            first = state.local_tokens // self.config.block_size
            idx = range(first, first + state.load_blocks)
            meta.loads.append(
                Transfer(req_id, [state.keys[i] for i in idx], [state.block_ids[i] for i in idx])
            )
            state.load_blocks = 0

    def _add_saves(self, meta, req_id, state, done_tokens) -> None:
        """Saves the prompt blocks that become full in this step and are not stored yet."""
        full = min(done_tokens // self.config.block_size, len(state.keys), len(state.block_ids))
        if full > state.saved:
            idx = range(state.saved, full)
            parent = state.keys[state.saved - 1] if state.saved else None
            meta.saves.append(
                Transfer(req_id, [state.keys[i] for i in idx], [state.block_ids[i] for i in idx],
                         parent)
            )
            state.saved = full

    def request_finished(self, request: Any, block_ids: Any) -> tuple:
        """(False: vLLM may free the blocks now, since saves finish in wait_for_save; None)."""
        self._requests.pop(request.request_id, None)
        return False, None

    # ---- worker side -------------------------------------------------------------------

    def register_kv_caches(self, kv_caches: dict) -> None:
        self._caches = {name: _as_numpy(c) for name, c in kv_caches.items()}
        self._layer_index = {name: i for i, name in enumerate(self._caches)}
        sizes = {_block_view(c, 0).nbytes for c in self._caches.values()}
        if len(sizes) != 1:
            raise ValueError(f"KV caches differ in bytes per block: {sorted(sizes)}")
        self._block_bytes = sizes.pop()

    def bind_connector_metadata(self, metadata: EmsConnectorMetadata) -> None:
        self._metadata = metadata

    def clear_connector_metadata(self) -> None:
        self._metadata = None

    def _worker_keys(self, keys: list) -> list:
        if self.config.rank == 0:
            return keys
        ns = self._namespace(self.config.rank)
        return [ems.Key(ns, k.digest) for k in keys]

    def start_load_kv(self, forward_context: Any = None, **kwargs: Any) -> None:
        """Reads every block the scheduler promised into the paged caches: one batch_get into
        a staging array (no copies on the Python side), then one copy per layer and block."""
        if not self._metadata or not self._metadata.loads:
            return
        keys, block_ids = [], []
        for t in self._metadata.loads:
            keys += self._worker_keys(t.keys)
            block_ids += t.block_ids
        per_block = self._block_bytes * len(self._caches)
        staging = np.empty((len(keys), len(self._caches), self._block_bytes), np.uint8)
        results = self._client.batch_get(keys, list(staging))
        for j, (block_id, r) in enumerate(zip(block_ids, results)):
            if isinstance(r, ems.EmsError) or r != per_block:
                # Evicted or lost since the scheduler matched it: vLLM recomputes the block.
                log.warning("EMS load of %s into block %d failed: %s", keys[j], block_id, r)
                self._load_errors.add(block_id)
                self.stats["load_errors"] += 1
                continue
            for layer, cache in enumerate(self._caches.values()):
                _write_block(cache, block_id, staging[j, layer])
            self.stats["loaded_blocks"] += 1

    def wait_for_layer_load(self, layer_name: str) -> None:
        """Loads finish in start_load_kv, before the first layer runs."""

    def save_kv_layer(self, layer_name: str, kv_layer: Any, attn_metadata: Any = None,
                      **kwargs: Any) -> None:
        """Copies this layer's part of every block to save into a staging array; after the last
        layer, the puts start on a background thread (the GIL is released while they run)."""
        if not self._metadata or not self._metadata.saves:
            return
        layer = self._layer_index[layer_name]
        if layer == 0:
            self.wait_for_save()  # the previous step's puts still own the staging array
            block_ids = [b for t in self._metadata.saves for b in t.block_ids]
            self._save_keys, self._save_parents = [], []
            for t in self._metadata.saves:  # each block's parent is the one before it
                keys = self._worker_keys(t.keys)
                parent = self._worker_keys([t.parent])[0] if t.parent is not None else None
                self._save_keys += keys
                self._save_parents += [parent] + keys[:-1]
            self._save_staging = np.empty(
                (len(block_ids), len(self._caches), self._block_bytes), np.uint8
            )
            self._save_blocks = block_ids
        kv = _as_numpy(kv_layer)
        for j, block_id in enumerate(self._save_blocks):
            self._save_staging[j, layer] = _block_view(kv, block_id).reshape(-1).view(np.uint8)
        if layer == len(self._caches) - 1:
            staging, keys = self._save_staging, self._save_keys
            self._save_future = self._executor.submit(
                self._client.batch_put, keys, list(staging.reshape(len(keys), -1)),
                self._save_parents
            )

    def wait_for_save(self) -> None:
        """Blocks until the puts of the current step are done. A failed put is logged and
        counted, never raised: the cache may simply not hold that block next time."""
        future, self._save_future = self._save_future, None
        if future is None:
            return
        for key, r in zip(self._save_keys, future.result()):
            if r is None:
                self.stats["saved_blocks"] += 1
            else:
                log.warning("EMS save of %s failed: %s", key, r)
                self.stats["save_errors"] += 1

    def get_finished(self, finished_req_ids: Iterable[str]) -> tuple:
        """(None, None): no transfer outlives its step."""
        return None, None

    def get_block_ids_with_load_errors(self) -> set:
        """GPU blocks whose promised KV could not be loaded (vLLM recomputes them)."""
        errors, self._load_errors = self._load_errors, set()
        return errors

    def close(self) -> None:
        self.wait_for_save()
        self._executor.shutdown()
        self._client.close()


# ---- tensor helpers (numpy; GPU builds replace these with device copies) ------------------


def _as_numpy(t: Any) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    if hasattr(t, "numpy"):  # a CPU torch tensor: shares memory
        return t.numpy()
    return np.asarray(t)


def _block_view(cache: np.ndarray, block_id: int) -> np.ndarray:
    """One block of one layer: cache[:, block_id] for [2, blocks, ...] (K and V), else
    cache[block_id] (e.g. MLA's [blocks, block_size, dim])."""
    return cache[:, block_id] if cache.shape[0] == 2 and cache.ndim >= 3 else cache[block_id]


def _write_block(cache: np.ndarray, block_id: int, data: np.ndarray) -> None:
    view = _block_view(cache, block_id)
    view[...] = data.view(cache.dtype).reshape(view.shape)
