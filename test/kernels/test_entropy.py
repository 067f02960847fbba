"""Triton kernel and CPU torch path against the float64 reference."""

import math

import pytest
import torch

from dynasor.kernels.entropy import MAX_TOPK, token_stats, token_stats_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-2}


def make_logits(rows: int, vocab: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Realistic rows (peaked and flat, scale 1 to 12), plus a masked, a uniform and a one-hot row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=g) * torch.linspace(1.0, 12.0, rows)[:, None]
    if rows >= 3:
        x[1, torch.rand(vocab, generator=g) < 0.9] = float("-inf")  # grammar / top-k style mask
        x[1, 0] = 3.0
        x[2] = 0.25  # all equal
    if rows >= 4:
        x[3] = float("-inf")
        x[3, vocab // 2] = 7.0  # a single finite entry
    return x.to(dtype)


def assert_close(got, want, dtype, what):
    tol = TOL[dtype]
    err = (got.double().cpu() - want).abs()
    bad = err > tol * (1 + want.abs())
    assert not bad.any(), f"{what}: max err {err.max().item():.3g} at rows {bad.nonzero().flatten().tolist()}"


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [1000, 49152, 152064, 262144, 1, 7, 2049, 50001])
def test_matches_float64_reference(backend, dtype, vocab):
    rows = 4 if vocab >= 4 else 2
    x = make_logits(rows, vocab, dtype, seed=vocab).to(DEVICE)
    temps = torch.tensor([0.3, 1.0, 1.5, 0.7][:rows], device=DEVICE)
    got = token_stats(x, temps, topk=MAX_TOPK, backend=backend)
    want = token_stats_reference(x, temps, topk=MAX_TOPK)
    assert_close(got.sampling_entropy, want.sampling_entropy, dtype, "entropy at T")
    assert_close(got.entropy, want.entropy, dtype, "entropy at T=1")
    assert_close(got.topk_confidence, want.topk_confidence, dtype, "top-k confidence")


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 1.5])
def test_special_rows_have_known_values(backend, temperature):
    vocab = 3000
    x = torch.full((4, vocab), float("-inf"))
    x[0] = 1.0                       # uniform: log V at every temperature
    x[1, 5] = 2.0                    # one finite entry: certain
    x[2, :10] = 0.0                  # 10 equal finite entries, rest masked: log 10
    # row 3 fully masked: defined as zeros
    got = token_stats(x.to(DEVICE), temperature, topk=5, backend=backend)
    expect = torch.tensor([math.log(vocab), 0.0, math.log(10), 0.0])
    assert torch.allclose(got.sampling_entropy.cpu(), expect, atol=1e-4)
    assert torch.allclose(got.entropy.cpu(), expect, atol=1e-4)
    # top-5 of a uniform row: each log p = -log V; one finite entry: only it counts (log p = 0)
    assert torch.allclose(got.topk_confidence.cpu(), torch.tensor([math.log(vocab), 0.0, math.log(10), 0.0]), atol=1e-4)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_entries_far_below_the_max_match_the_reference(backend):
    """Logits hundreds of nats below the row max (a low temperature stretches them further) add
    nothing visible: the CPU path floors them at 80 nats below the max, which keeps exp() off its
    slow underflow path, and must still agree with float64."""
    x = torch.randn(3, 5000, generator=torch.Generator().manual_seed(4)) * 30.0
    x[1, ::2] = -1e4  # finite, far below everything else
    x[2, :100] = 50.0  # a plateau high above a long tail
    temps = torch.tensor([0.1, 0.3, 0.05])
    got = token_stats(x.to(DEVICE), temps.to(DEVICE), topk=MAX_TOPK, backend=backend)
    want = token_stats_reference(x, temps)
    for field in ("entropy", "sampling_entropy", "topk_confidence"):
        assert_close(getattr(got, field), getattr(want, field), torch.float32, field)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_greedy_rows(backend):
    x = torch.randn(3, 5000, generator=torch.Generator().manual_seed(0))
    x[1, 7] = x[1, 9] = x[1].max() + 1.0  # two tied maxima
    got = token_stats(x.to(DEVICE), torch.tensor([0.0, 0.0, 1.0]), topk=MAX_TOPK, backend=backend)
    want = token_stats_reference(x, torch.tensor([0.0, 0.0, 1.0]))
    assert got.sampling_entropy[0].item() == pytest.approx(0.0, abs=1e-6)
    assert got.sampling_entropy[1].item() == pytest.approx(math.log(2), abs=1e-5)
    assert_close(got.entropy, want.entropy, torch.float32, "entropy at T=1 of greedy rows")


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_non_contiguous_rows_and_topk_zero(backend):
    big = make_logits(6, 4100, torch.float32, seed=3)
    x = big[::2]  # row stride 2 * vocab
    got = token_stats(x.to(DEVICE), torch.tensor([1.0, 0.5, 2.0]), topk=0, backend=backend)
    want = token_stats_reference(x, torch.tensor([1.0, 0.5, 2.0]), topk=0)
    assert_close(got.sampling_entropy, want.sampling_entropy, torch.float32, "entropy at T")
    assert torch.count_nonzero(got.topk_confidence) == 0


def test_fp16_and_empty_batch():
    x = make_logits(3, 2049, torch.float16, seed=5)
    got = token_stats(x.to(DEVICE), 1.0, backend="triton")
    want = token_stats_reference(x, 1.0)
    assert_close(got.entropy, want.entropy, torch.float16, "fp16 entropy")
    empty = token_stats(torch.zeros(0, 10, device=DEVICE), torch.zeros(0), backend="triton")
    assert empty.entropy.numel() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="topk"):
        token_stats(torch.zeros(1, 10), 1.0, topk=21)
    with pytest.raises(ValueError, match="one temperature per row"):
        token_stats(torch.zeros(3, 10), torch.ones(2))
    with pytest.raises(ValueError, match=r"\[rows, vocab\]"):
        token_stats(torch.zeros(10), 1.0)


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_input_logits_are_not_modified(backend, dtype):
    """The sampler hook runs before SGLang samples from the same tensor."""
    x = make_logits(4, 3000, dtype, seed=11).to(DEVICE)
    before = x.clone()
    token_stats(x, torch.tensor([0.0, 0.5, 1.0, 2.0], device=DEVICE), backend=backend)
    assert torch.equal(x, before)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_fully_masked_greedy_row_is_zero(backend):
    x = torch.full((2, 500), float("-inf"))
    x[1, 3] = 1.0
    got = token_stats(x.to(DEVICE), torch.zeros(2), backend=backend)
    assert got.sampling_entropy.tolist() == [0.0, 0.0] and got.entropy.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("splits", [1, 2, 8, 32])
def test_vocabulary_splits_merge_to_the_same_values(splits):
    """Split programs (some past the vocabulary end, i.e. empty) merge to the reference values,
    including greedy ties that fall in different splits and a row whose finite entries sit in one split."""
    from dynasor.kernels.entropy_triton import LaunchConfig, token_stats_triton

    vocab = 5000
    x = make_logits(5, vocab, torch.float32, seed=splits)
    x[4] = torch.randn(vocab, generator=torch.Generator().manual_seed(1))
    x[4, 10] = x[4, 4990] = x[4].max() + 2.0  # tied maxima at both ends of the vocabulary
    temps = torch.tensor([0.7, 1.0, 1.5, 0.3, 0.0])
    got = token_stats_triton(x.to(DEVICE), temps.to(DEVICE), MAX_TOPK, LaunchConfig(block=256, splits=splits))
    want = token_stats_reference(x, temps)
    for field in ("entropy", "sampling_entropy", "topk_confidence"):
        assert_close(getattr(got, field), getattr(want, field), torch.float32, f"{field} with {splits} splits")
    assert got.sampling_entropy[4].item() == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.parametrize("unroll", [1, 2, 4])
def test_top_k_entries_sharing_one_lane(unroll):
    """The top-k search re-reads the lanes with the largest maxima: here all 20 of the largest
    entries sit in one lane (same index modulo the block), next to a lane holding only the row max,
    and the values must still match the reference."""
    from dynasor.kernels.entropy_triton import LaunchConfig, token_stats_triton

    block, vocab = 256, 256 * 40 + 17
    x = torch.randn(3, vocab, generator=torch.Generator().manual_seed(unroll))
    x[0, 5 + block * torch.arange(25)] = 10.0 + torch.arange(25, dtype=torch.float32)  # one lane
    x[0, 77] = 100.0  # another lane: the row max alone
    x[1, 9 + block * torch.arange(30)] = 6.0  # ties in one lane
    x[2, -1] = 50.0  # the tail block, masked past the vocabulary
    temps = torch.tensor([1.0, 0.7, 0.0])
    for splits in (1, 4):
        config = LaunchConfig(block=block, splits=splits, unroll=unroll)
        got = token_stats_triton(x.to(DEVICE), temps.to(DEVICE), MAX_TOPK, config)
        want = token_stats_reference(x, temps)
        for field in ("entropy", "sampling_entropy", "topk_confidence"):
            assert_close(getattr(got, field), getattr(want, field), torch.float32, f"{field}, {splits} splits")


def test_splits_must_be_a_power_of_two():
    from dynasor.kernels.entropy_triton import LaunchConfig, choose_splits

    with pytest.raises(ValueError, match="power of two"):
        choose_splits(4, 1000, LaunchConfig(splits=3), multiprocessors=8)
    # few rows on many multiprocessors: split until the GPU is full or splits get too short
    assert choose_splits(1, 152064, LaunchConfig(block=2048), multiprocessors=132) == 32
    assert choose_splits(256, 152064, LaunchConfig(block=2048), multiprocessors=132) == 2
    assert choose_splits(1024, 152064, LaunchConfig(block=2048), multiprocessors=132) == 1
    # a long row on a full GPU still splits, so one split's top-k gather stays bounded
    assert choose_splits(1024, 262144, LaunchConfig(block=512), multiprocessors=132) == 4
