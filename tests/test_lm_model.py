"""CodebookLM: KV-cached steps equal teacher forcing, prompts are kept, a tiny conditional task
is learned from the condition (and not from a shuffled one)."""

import pytest
import torch

from mmgen.lm.layers import KVCache
from mmgen.lm.model import CodebookLM, condition_frames
from mmgen.lm.patterns import PATTERNS
from mmgen.lm.sampling import SamplingConfig, generate_codes


def _lm(pattern: str = "delay", K: int = 2, card: int = 6, aligned: bool = False, **kw) -> CodebookLM:
    torch.manual_seed(0)
    return CodebookLM(K, card, pattern, rate_hz=4.0, d_model=32, depth=2, num_heads=2,
                      conditions={"motion": {"dim": 3, "rate_hz": 4.0, "aligned": aligned},
                                  "text": {"dim": 5, "rate_hz": None}}, **kw).eval()  # fmt: skip


def _cond(B: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {"motion": (torch.randn(B, T, 3, generator=g), torch.ones(B, T, dtype=torch.bool)),
            "text": (torch.randn(B, 2, 5, generator=g), torch.tensor([[True, True], [True, False]][:B]))}  # fmt: skip


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_kv_cache_steps_equal_teacher_forcing(pattern, aligned):
    model, T = _lm(pattern, aligned=aligned), 5
    codes = torch.randint(0, 6, (2, 2, T), generator=torch.Generator().manual_seed(1))
    p = model.pattern(T)
    seq = p.build(codes)
    memory = model.memory(_cond(2, T))
    full = model.forward_steps(seq, 0, p, memory)  # [B, K, S, V]
    cache = KVCache.empty(model.depth)
    first = model.forward_steps(seq[:, :, :3], 0, p, memory, cache)  # a prefix in one call
    rest = [model.forward_steps(seq[:, :, s:s + 1], s, p, memory, cache) for s in range(3, p.steps)]
    stepped = torch.cat([first, *rest], dim=2)
    assert torch.allclose(stepped, full, atol=1e-5)
    assert torch.allclose(model(codes, _cond(2, T)), p.revert_logits(full), atol=1e-6)


def test_outputs_are_causal():
    model, T = _lm("delay"), 6
    codes = torch.randint(0, 6, (1, 2, T))
    changed = codes.clone()
    changed[:, :, 4:] = (changed[:, :, 4:] + 1) % 6
    cond = {k: (v[:1], m[:1]) for k, (v, m) in _cond(2, T).items()}
    a, b = model(codes, cond), model(changed, cond)
    # codebook 0 of frames <= 4 and codebook 1 of frames <= 3 are predicted before any change is seen
    assert torch.allclose(a[:, 0, :5], b[:, 0, :5]) and torch.allclose(a[:, 1, :4], b[:, 1, :4])
    assert not torch.allclose(a[:, 0, 5], b[:, 0, 5])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_generate_keeps_the_prompt(pattern):
    model, T = _lm(pattern), 7
    prompt = torch.randint(0, 6, (2, 2, 3), generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(0)
    out = generate_codes(model, T, _cond(2, T), SamplingConfig(top_k=3), prompt=prompt, generator=g)
    assert out.shape == (2, 2, T) and out.min() >= 0 and out.max() < 6
    assert torch.equal(out[:, :, :3], prompt)
    again = generate_codes(model, T, _cond(2, T), SamplingConfig(top_k=3), prompt=prompt,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(out, again)


def test_condition_frames_pools_video():
    video = torch.arange(2 * 3 * 4 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 4, 5)
    out = condition_frames(video)
    assert out.shape == (2, 3, 20)
    assert torch.allclose(out[0, 0].view(5, 2, 2)[:, 0, 0], video[0, 0, :2, :2].mean((0, 1)))
    with pytest.raises(ValueError, match=r"\[B, T, C\]"):
        condition_frames(torch.zeros(2, 3))


def test_bad_conditions_raise():
    model = _lm()
    with pytest.raises(ValueError, match="unknown condition"):
        model.memory({"audio": (torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))})
    with pytest.raises(ValueError, match="'motion' wants values"):
        model.memory({"motion": (torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))})
    with pytest.raises(ValueError, match="unknown pattern"):
        CodebookLM(2, 6, "zigzag")
    with pytest.raises(ValueError, match="'text' is aligned but has no rate_hz"):
        CodebookLM(2, 6, conditions={"text": {"dim": 5, "rate_hz": None, "aligned": True}})


def test_aligned_stream_reads_the_predicted_frame():
    """The stream added at step s is the condition frame whose seconds match the frame step s
    predicts: moving the dance k frames later moves the stream k steps later; dropping it gives
    the learned null vector on every step."""
    model, T, k = _lm("delay", aligned=True), 12, 3
    g = torch.Generator().manual_seed(5)
    motion = torch.randn(1, T, 3, generator=g)
    shifted = torch.cat([motion[:, :1].expand(1, k, 3), motion[:, :-k]], 1)  # frame t -> t + k
    ones = torch.ones(1, T, dtype=torch.bool)
    seconds, _ = model._step_tables(model.pattern(T))
    a = model.memory({"motion": (motion, ones)}).at_seconds(seconds)  # [1, S, D]
    b = model.memory({"motion": (shifted, ones)}).at_seconds(seconds)
    frames = (seconds * 4.0).round().long()
    later = [s for s in range(len(seconds)) if frames[s] >= k + 2 and frames[s] + 2 < T - k]  # away from the padded ends
    assert later
    for s in later:
        s0 = int((frames == frames[s] - k).nonzero()[0])
        assert torch.allclose(b[0, s], a[0, s0], atol=1e-6)
    assert not torch.allclose(a[0, later[0]], a[0, later[-1]])
    dropped = model.memory({"motion": (motion, ones)}, {"motion": torch.tensor([True])}).at_seconds(seconds)
    assert torch.equal(dropped, model.aligned_null["motion"].expand_as(dropped))


def _toy_batch(B: int, T: int, g: torch.Generator):
    """Codebook 0 copies the condition's class at the same frame; codebook 1 = class + 1 (mod 4)."""
    cls = torch.randint(0, 4, (B, T), generator=g)
    codes = torch.stack([cls, (cls + 1) % 4], 1)  # [B, 2, T]
    cond = torch.nn.functional.one_hot(cls, 4).float()  # [B, T, 4]
    return codes, cond


STEPS = 60


def _train_toy(shuffle: bool, aligned: bool = False) -> float:
    torch.manual_seed(0)
    model = CodebookLM(2, 4, "delay", rate_hz=4.0, d_model=16, depth=1, num_heads=2,
                       conditions={"dance": {"dim": 4, "rate_hz": 4.0, "aligned": aligned}})  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        codes, cond = _toy_batch(16, 8, g)
        if shuffle:
            cond = cond[torch.randperm(16, generator=g)]
        loss, _ = model.loss(codes, {"dance": (cond, torch.ones(16, 8, dtype=torch.bool))})
        opt.zero_grad()
        loss.backward()
        opt.step()
    codes, cond = _toy_batch(64, 8, torch.Generator().manual_seed(99))
    with torch.no_grad():
        return float(model.loss(codes, {"dance": (cond, torch.ones(64, 8, dtype=torch.bool))})[0])


def test_lm_learns_a_conditional_task_from_the_condition():
    true, shuffled = _train_toy(False), _train_toy(True)
    # the shuffled-condition model can only learn codebook 1 from codebook 0: CE ~ log(4) / 2 = 0.69
    assert shuffled > 0.5
    assert true < 0.25 and true < 0.3 * shuffled, (true, shuffled)


def test_aligned_stream_learns_a_conditional_task():
    true, shuffled = _train_toy(False, aligned=True), _train_toy(True, aligned=True)
    assert shuffled > 0.5
    assert true < 0.25 and true < 0.3 * shuffled, (true, shuffled)
