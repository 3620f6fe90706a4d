"""ems.PrefixHasher gives the digests of the C++ hasher: the published vectors (read from the
C++ test so the two never drift), an independent pure-Python SHA-256 and xxhsum, and every
token container."""

import array
import hashlib
import pathlib
import pickle
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

import ems

REPO = pathlib.Path(__file__).resolve().parents[2]


def cpp_vectors():
    """kVectors of src/common/prefix_hash_test.cc: {algo: [block0, block1, extra, big]}."""
    text = (REPO / "src/common/prefix_hash_test.cc").read_text()
    body = text[text.index("kVectors[] = {") :]
    body = body[: body.index("};")]
    out = {}
    for algo, hexes in re.findall(r"HashAlgorithm::k(\w+),((?:\s*\"[0-9a-f]{32}\",?){4})", body):
        out["xxh3" if algo.startswith("Xxh3") else "sha256"] = re.findall(r"[0-9a-f]{32}", hexes)
    assert set(out) == {"xxh3", "sha256"}, out
    return out


@pytest.mark.parametrize("algo", ["xxh3", "sha256"])
def test_matches_the_cpp_test_vectors(algo):
    block0, block1, extra, big = cpp_vectors()[algo]
    h = ems.PrefixHasher(4, algo)
    assert h.algorithm == algo and h.block_tokens == 4
    assert [d.hex() for d in h.hash(range(8))] == [block0, block1]
    assert h.hash([0, 1, 2, 3], extra="lora:7")[0].hex() == extra
    assert h.hash([0, 1, 2, 3], extra=b"lora:7")[0].hex() == extra
    assert ems.PrefixHasher(16, algo).hash(range(100000, 100016))[0].hex() == big
    assert h.hash_from(bytes.fromhex(block0), [4, 5, 6, 7])[0].hex() == block1
    assert ems.chain_digest(ems.ROOT_DIGEST, [0, 1, 2, 3], algorithm=algo).hex() == block0


def encode(parent, tokens, extra=b""):
    return (
        parent
        + struct.pack("<I", len(tokens))
        + struct.pack(f"<{len(tokens)}I", *tokens)
        + struct.pack("<I", len(extra))
        + extra
    )


def test_matches_independent_implementations():
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 2**32, 16 * 8, dtype=np.uint64).astype(np.uint32)
    extra = b"mm:" + bytes(range(40))
    assert ems.ROOT_DIGEST == b"ems.prefix.v1\0\0\0"

    got = ems.PrefixHasher(16, "sha256").hash(tokens, extra)
    parent = ems.ROOT_DIGEST
    for i, d in enumerate(got):
        data = encode(parent, tokens[16 * i : 16 * i + 16].tolist(), extra)
        parent = hashlib.sha256(data).digest()[:16]
        assert d == parent, i

    xxhsum = shutil.which("xxhsum")
    if xxhsum is None:
        pytest.skip("xxhsum (Debian package xxhash) not installed")
    got = ems.PrefixHasher(16).hash(tokens, extra)
    parent = ems.ROOT_DIGEST
    for i, d in enumerate(got):
        data = encode(parent, tokens[16 * i : 16 * i + 16].tolist(), extra)
        out = subprocess.run([xxhsum, "-H2", "-"], input=data, capture_output=True, check=True)
        parent = bytes.fromhex(out.stdout.split()[0].decode()[-32:])
        assert d == parent, i


def test_every_token_container_hashes_alike():
    values = [5, 70000, 2**32 - 1, 0, 9, 8, 7, 6]
    want = ems.PrefixHasher(4).hash(values)
    assert len(want) == 2
    for tokens in (
        values,
        tuple(values),
        np.array(values, np.uint32),
        np.array(values, np.int64),
        np.array(values, np.uint64),
        array.array("I", values),
        array.array("q", values),
    ):
        assert ems.PrefixHasher(4).hash(tokens) == want, type(tokens)
    small = [1, 2, 3, 4]
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32):
        assert ems.PrefixHasher(4).hash(np.array(small, dtype)) == ems.PrefixHasher(4).hash(small)


def test_partial_blocks_chains_and_keys():
    h = ems.PrefixHasher(4)
    assert len(h.hash(range(11))) == 2  # the trailing 3 tokens have no digest
    assert h.hash(range(3)) == []
    a, b = h.hash([1, 2, 3, 4, 5, 6, 7, 8]), h.hash([1, 2, 3, 9, 5, 6, 7, 8])
    assert a[0] != b[0] and a[1] != b[1]  # a change in block 0 changes every later digest
    keys = h.keys("llama/bf16", range(8))
    assert [k.digest for k in keys] == h.hash(range(8))
    assert keys[0] == ems.Key("llama/bf16", keys[0].digest)
    assert keys[0] == ems.Key.from_hex("llama/bf16", keys[0].hex())
    assert len({keys[0], ems.Key("llama/bf16", keys[0].digest)}) == 1
    assert pickle.loads(pickle.dumps(keys[1])) == keys[1]


def test_an_unpickled_key_is_checked_like_a_new_one():
    # A pickle is input: one made elsewhere (here, a real key's with its namespace swapped)
    # must not give a Key that Key() would refuse.
    def forged(ns):
        data = pickle.dumps(ems.Key("ok/ns", bytes(16)), protocol=2)
        field = b"X" + struct.pack("<I", 5) + b"ok/ns"  # BINUNICODE "ok/ns"
        assert data.count(field) == 1
        return data.replace(field, b"X" + struct.pack("<I", len(ns)) + ns.encode())

    assert pickle.loads(forged("ok/ns")) == ems.Key("ok/ns", bytes(16))
    with pytest.raises(ems.InvalidArgumentError, match="namespace is 70000 bytes"):
        pickle.loads(forged("n" * 70000))
    with pytest.raises(ems.InvalidArgumentError, match="non-printable"):
        pickle.loads(forged("bad ns"))


def test_bad_input_is_named():
    with pytest.raises(ems.InvalidArgumentError, match="block_tokens"):
        ems.PrefixHasher(0)
    with pytest.raises(ems.InvalidArgumentError, match="xxh3"):
        ems.PrefixHasher(4, "md5")
    with pytest.raises(ems.InvalidArgumentError, match=r"tokens\[2\] = -1"):
        ems.PrefixHasher(4).hash([1, 2, -1, 3])
    with pytest.raises(ems.InvalidArgumentError, match=r"tokens\[1\] = 4294967296"):
        ems.PrefixHasher(4).hash(np.array([1, 2**32, 3, 4], np.int64))
    with pytest.raises(ems.InvalidArgumentError, match="not an integer array"):
        ems.PrefixHasher(4).hash(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match=r"tokens\[0\]"):
        ems.PrefixHasher(4).hash([1.5, 2, 3, 4])
    with pytest.raises(ems.InvalidArgumentError, match="parent"):
        ems.PrefixHasher(4).hash_from(b"short", range(4))
    with pytest.raises(ems.InvalidArgumentError):
        ems.PrefixHasher(4).keys("", range(4))


def test_a_refused_token_leaves_the_array_resizable():
    # The buffer export taken to read the tokens must end when a token is refused: one left
    # behind pins the array for good, and resizing it raises BufferError.
    for tokens in (array.array("i", [-1]), array.array("q", [2**32])):
        with pytest.raises(ems.InvalidArgumentError, match=r"tokens\[0\]"):
            ems.PrefixHasher(4).hash(tokens)
        tokens.append(1)
        tokens.extend([2, 3, 4])
        assert len(tokens) == 5


def test_checksum_is_xxh3_64():
    data = bytes(range(256)) * 100
    assert ems.checksum(data) == ems.checksum(np.frombuffer(data, np.uint8))
    assert ems.checksum(data) != ems.checksum(data[:-1] + b"\1")
