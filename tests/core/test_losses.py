"""Tests of domainclip.core.losses against straightforward loop implementations written here."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from domainclip.core.losses import (
    LOSSES,
    ClipLoss,
    InfoLOOBLoss,
    MultiPositiveClipLoss,
    SigLipLoss,
    create_loss,
)
from domainclip.core.plugins import UnknownNameError

DT = torch.float64


def _features(n: int, d: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=DT), dim=1)


# --------------------------------------------------------------------------------------------------
# Reference implementations: explicit loops, log-sum-exp written out as log(sum(exp)).
# They use torch scalar ops so autograd gives reference gradients too.
# --------------------------------------------------------------------------------------------------


def _log_sum_exp(values: list[torch.Tensor]) -> torch.Tensor:
    total = values[0].exp()
    for v in values[1:]:
        total = total + v.exp()
    return total.log()


def ref_clip(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    n = img.shape[0]
    image_to_text = 0.0
    text_to_image = 0.0
    for i in range(n):
        logits = [scale * torch.dot(img[i], txt[j]) for j in range(n)]
        image_to_text = image_to_text - (logits[i] - _log_sum_exp(logits))
    for j in range(n):
        logits = [scale * torch.dot(txt[j], img[i]) for i in range(n)]
        text_to_image = text_to_image - (logits[j] - _log_sum_exp(logits))
    return (image_to_text / n + text_to_image / n) / 2


def ref_siglip(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    n = img.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            logit = scale * torch.dot(img[i], txt[j]) + bias
            total = total + torch.log(1 + torch.exp(-z * logit))  # -log sigmoid(z * logit)
    return total / n


def ref_retrieve(state: torch.Tensor, stored: torch.Tensor, beta: float) -> torch.Tensor:
    out = []
    for q in state:
        weights = [torch.exp(beta * torch.dot(q, m)) for m in stored]
        z = sum(weights)
        r = sum(w / z * m for w, m in zip(weights, stored))
        out.append(r / torch.sqrt(torch.dot(r, r)))
    return torch.stack(out)


def ref_infoloob(
    img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, hopfield_beta: float | None = None
) -> torch.Tensor:
    n = img.shape[0]
    if hopfield_beta is None:
        u_x, u_y, v_x, v_y = img, txt, img, txt
    else:
        u_x = ref_retrieve(img, img, hopfield_beta)
        u_y = ref_retrieve(txt, img, hopfield_beta)
        v_x = ref_retrieve(img, txt, hopfield_beta)
        v_y = ref_retrieve(txt, txt, hopfield_beta)
    loss_img = 0.0
    loss_txt = 0.0
    for i in range(n):
        pos = scale * torch.dot(u_x[i], u_y[i])
        neg = [scale * torch.dot(u_x[i], u_y[j]) for j in range(n) if j != i]
        loss_img = loss_img + (-pos + _log_sum_exp(neg))
        pos = scale * torch.dot(v_y[i], v_x[i])
        neg = [scale * torch.dot(v_y[i], v_x[j]) for j in range(n) if j != i]
        loss_txt = loss_txt + (-pos + _log_sum_exp(neg))
    return (loss_img / n + loss_txt / n) / 2


def ref_multi_positive(img, txt, scale, owner, level=None, weights=None) -> dict[str, torch.Tensor]:
    owner = owner.tolist()
    levels = level.tolist() if level is not None else [0] * len(owner)
    parts = {}
    for k in sorted(set(levels)):
        texts = [t for t in range(len(owner)) if levels[t] == k]
        # image -> text: mean of -log p over the image's positives, averaged over images having some
        i2t, n_img = 0.0, 0
        for i in range(img.shape[0]):
            positives = [t for t in texts if owner[t] == i]
            if not positives:
                continue
            log_z = _log_sum_exp([scale * torch.dot(img[i], txt[t]) for t in texts])
            i2t = i2t + sum(-(scale * torch.dot(img[i], txt[t]) - log_z) for t in positives) / len(positives)
            n_img += 1
        # text -> image: CE to the owner over all images
        t2i = 0.0
        for t in texts:
            logits = [scale * torch.dot(txt[t], img[i]) for i in range(img.shape[0])]
            t2i = t2i - (logits[owner[t]] - _log_sum_exp(logits))
        loss = (i2t / n_img + t2i / len(texts)) / 2
        if level is None:
            parts["contrastive_loss"] = loss
        else:
            parts[f"loss_level_{k}"] = (1.0 if weights is None else weights[k]) * loss
    return parts


def _grads(fn, *inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    value = fn(*leaves)
    return value.detach(), list(torch.autograd.grad(value, leaves))


# --------------------------------------------------------------------------------------------------
# Single-process values and gradients
# --------------------------------------------------------------------------------------------------


def test_clip_loss_matches_reference_value_and_gradients():
    img, txt = _features(6, seed=1), _features(6, seed=2)
    scale = torch.tensor(7.5, dtype=DT)
    value, grads = _grads(lambda i, t, s: ClipLoss()(i, t, s), img, txt, scale)
    ref_value, ref_grads = _grads(ref_clip, img, txt, scale)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=1e-12)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-12)
    assert value > 0.5  # not a degenerate case where everything is 0


def test_clip_loss_gradcheck():
    img = torch.randn(4, 3, dtype=DT, requires_grad=True)
    txt = torch.randn(4, 3, dtype=DT, requires_grad=True)
    scale = torch.tensor(2.0, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, t, s: ClipLoss()(i, t, s), (img, txt, scale))


def test_clip_loss_bias_is_added_once_and_output_dict():
    img, txt = _features(5, seed=3), _features(5, seed=4)
    loss = ClipLoss()
    plain = loss(img, txt, 4.0)
    out = loss(img, txt, 4.0, logit_bias=-3.0, output_dict=True)
    assert set(out) == {"contrastive_loss"}
    # a constant shift of all logits leaves a softmax cross-entropy unchanged
    torch.testing.assert_close(out["contrastive_loss"], plain, rtol=0, atol=1e-12)


def test_forward_ignores_extra_keywords_like_a_model_output_dict():
    img, txt = _features(4, seed=5), _features(4, seed=6)
    model_out = {"image_features": img, "text_features": txt, "logit_scale": torch.tensor(3.0, dtype=DT)}
    for name in ("clip", "infoloob"):
        value = create_loss(name)(**model_out, unused_key=torch.zeros(1))
        assert torch.isfinite(value)
    ref = ref_clip(img, txt, torch.tensor(3.0, dtype=DT))
    torch.testing.assert_close(create_loss("clip")(**model_out, extra=1), ref, rtol=0, atol=1e-12)


def test_siglip_matches_reference_value_and_gradients():
    img, txt = _features(5, seed=7), _features(5, seed=8)
    scale, bias = torch.tensor(10.0, dtype=DT), torch.tensor(-4.0, dtype=DT)
    value, grads = _grads(lambda i, t, s, b: SigLipLoss()(i, t, s, b), img, txt, scale, bias)
    ref_value, ref_grads = _grads(ref_siglip, img, txt, scale, bias)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=1e-12)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-12)


def test_siglip_requires_logit_bias():
    with pytest.raises(ValueError, match="logit_bias"):
        SigLipLoss()(_features(3), _features(3, seed=1), 10.0)


@pytest.mark.parametrize("hopfield", [False, True])
def test_infoloob_matches_reference_value_and_gradients(hopfield):
    img, txt = _features(5, seed=9), _features(5, seed=10)
    scale = torch.tensor(6.0, dtype=DT)
    loss = InfoLOOBLoss(hopfield=hopfield, hopfield_scale=3.0)
    value, grads = _grads(lambda i, t, s: loss(i, t, s), img, txt, scale)
    beta = 3.0 if hopfield else None
    ref_value, ref_grads = _grads(lambda i, t, s: ref_infoloob(i, t, s, beta), img, txt, scale)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=1e-12)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-11)


def test_infoloob_excludes_the_positive_and_hopfield_changes_the_value():
    img, txt = _features(4, seed=11), _features(4, seed=12)
    loob = InfoLOOBLoss()(img, txt, 5.0)
    assert not torch.isclose(loob, ClipLoss()(img, txt, 5.0))
    assert not torch.isclose(loob, InfoLOOBLoss(hopfield=True)(img, txt, 5.0))
    with pytest.raises(ValueError, match="at least two"):
        InfoLOOBLoss()(img[:1], txt[:1], 5.0)


def test_multi_positive_matches_reference_with_several_texts_per_image():
    img, txt = _features(4, seed=13), _features(7, seed=14)
    owner = torch.tensor([0, 0, 1, 2, 2, 2, 0])  # image 3 has no text: skipped image->text, still a negative
    scale = torch.tensor(5.0, dtype=DT)
    loss = MultiPositiveClipLoss()
    value, grads = _grads(lambda i, t, s: loss(i, t, s, text_to_image=owner), img, txt, scale)
    ref_value, ref_grads = _grads(
        lambda i, t, s: ref_multi_positive(i, t, s, owner)["contrastive_loss"], img, txt, scale
    )
    torch.testing.assert_close(value, ref_value, rtol=0, atol=1e-12)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-12)


def test_multi_positive_with_one_text_per_image_equals_clip_loss():
    img, txt = _features(6, seed=15), _features(6, seed=16)
    scale = torch.tensor(8.0, dtype=DT)
    owner = torch.arange(6)
    loss = MultiPositiveClipLoss()
    value, grads = _grads(lambda i, t, s: loss(i, t, s, text_to_image=owner), img, txt, scale)
    clip_value, clip_grads = _grads(lambda i, t, s: ClipLoss()(i, t, s), img, txt, scale)
    torch.testing.assert_close(value, clip_value, rtol=0, atol=1e-12)
    for g, cg in zip(grads, clip_grads):
        torch.testing.assert_close(g, cg, rtol=0, atol=1e-12)


@pytest.mark.parametrize("weights", [{0: 1.0, 1: 0.5, 3: 2.0}, [1.0, 0.5, 9.0, 2.0]])
def test_multi_positive_levels_give_weighted_named_parts(weights):
    img, txt = _features(3, seed=17), _features(8, seed=18)
    owner = torch.tensor([0, 1, 2, 0, 1, 0, 2, 2])
    level = torch.tensor([0, 0, 0, 1, 1, 3, 3, 1])
    scale = torch.tensor(4.0, dtype=DT)
    parts = MultiPositiveClipLoss()(img, txt, scale, text_to_image=owner, level=level, level_weights=weights,
                                    output_dict=True)
    ref = ref_multi_positive(img, txt, scale, owner, level, weights)
    assert set(parts) == {"loss_level_0", "loss_level_1", "loss_level_3"}
    for key in ref:
        torch.testing.assert_close(parts[key], ref[key], rtol=0, atol=1e-12)
    total = MultiPositiveClipLoss(level_weights=weights)(img, txt, scale, text_to_image=owner, level=level)
    torch.testing.assert_close(total, sum(ref.values()), rtol=0, atol=1e-12)
    # weights really are applied: level 3 weighs 2
    unweighted = MultiPositiveClipLoss()(img, txt, scale, text_to_image=owner, level=level, output_dict=True)
    torch.testing.assert_close(parts["loss_level_3"], 2.0 * unweighted["loss_level_3"], rtol=0, atol=1e-12)


def test_multi_positive_rejects_bad_input():
    img, txt = _features(3), _features(4, seed=1)
    loss = MultiPositiveClipLoss()
    with pytest.raises(ValueError, match="text_to_image values"):
        loss(img, txt, 2.0, text_to_image=torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="needs text_to_image"):
        loss(img, txt, 2.0)
    with pytest.raises(ValueError, match="shape"):
        loss(img, txt, 2.0, text_to_image=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no weight for level 2"):
        loss(img, txt, 2.0, text_to_image=torch.tensor([0, 1, 2, 0]), level=torch.tensor([0, 0, 2, 2]),
             level_weights={0: 1.0})
    with pytest.raises(ValueError, match="without level"):
        loss(img, txt, 2.0, text_to_image=torch.tensor([0, 1, 2, 0]), level_weights=[1.0])


def test_feature_and_scale_validation():
    with pytest.raises(ValueError, match="one text per image"):
        ClipLoss()(_features(3), _features(4), 1.0)
    with pytest.raises(ValueError, match="different widths"):
        ClipLoss()(_features(3, d=4), _features(3, d=5), 1.0)
    with pytest.raises(ValueError, match="logit_scale must be a scalar"):
        ClipLoss()(_features(3), _features(3, seed=2), torch.ones(2, dtype=DT))


def test_distributed_arguments_are_checked():
    with pytest.raises(ValueError, match="gather_with_grad"):
        ClipLoss(local_loss=True, gather_with_grad=False)
    with pytest.raises(RuntimeError, match="not initialised"):
        ClipLoss(rank=0, world_size=2)(_features(3), _features(3, seed=1), 1.0)
    with pytest.raises(RuntimeError, match="outside world_size"):
        ClipLoss(rank=2, world_size=2)(_features(3), _features(3, seed=1), 1.0)


def test_registry():
    assert {"clip", "siglip", "infoloob", "multi_positive"} <= set(LOSSES)
    loss = create_loss("infoloob", hopfield=True, hopfield_scale=2.0, local_loss=True)
    assert isinstance(loss, InfoLOOBLoss) and loss.hopfield and loss.hopfield_scale == 2.0 and loss.local_loss
    with pytest.raises(UnknownNameError, match="Did you mean: siglip"):
        create_loss("sigclip")


# --------------------------------------------------------------------------------------------------
# Two processes: gathered loss and gradients equal the single-process full-batch ones
# --------------------------------------------------------------------------------------------------

WORLD = 2
D_IN, D_OUT = 6, 4


def _cases() -> dict[str, dict]:
    """Cases run on both ranks; per-rank image/text counts may differ."""
    equal = {"image_sizes": [3, 3], "text_sizes": [3, 3]}
    cases: dict[str, dict] = {}
    for mode, kw in {
        "global": {"local_loss": False, "gather_with_grad": True},
        "global_nograd": {"local_loss": False, "gather_with_grad": False},
        "local": {"local_loss": True, "gather_with_grad": True},
    }.items():
        cases[f"clip_{mode}"] = {"loss": "clip", "kwargs": kw, **equal}
        cases[f"siglip_{mode}"] = {"loss": "siglip", "kwargs": kw, **equal}
        cases[f"infoloob_{mode}"] = {"loss": "infoloob", "kwargs": kw, **equal}
        cases[f"hopfield_{mode}"] = {"loss": "infoloob", "kwargs": {**kw, "hopfield": True}, **equal}
    # unequal batch per rank (a last, smaller batch)
    cases["clip_unequal"] = {"loss": "clip", "kwargs": {}, "image_sizes": [2, 4], "text_sizes": [2, 4]}
    # several texts per image, levels, unequal text counts per rank
    multi = {
        "loss": "multi_positive",
        "image_sizes": [3, 2],
        "text_sizes": [4, 6],
        "text_to_image": [[0, 0, 1, 2], [0, 1, 1, 0, 1, 0]],
        "level": [[0, 1, 0, 0], [1, 0, 1, 2, 2, 0]],
        "level_weights": {0: 1.0, 1: 0.5, 2: 2.0},
    }
    cases["multi_global"] = {**multi, "kwargs": {"local_loss": False, "gather_with_grad": True}}
    cases["multi_global_nograd"] = {**multi, "kwargs": {"local_loss": False, "gather_with_grad": False}}
    # local_loss: equal counts per rank and level, so the mean of the rank losses is the global loss
    cases["multi_local"] = {
        "loss": "multi_positive",
        "kwargs": {"local_loss": True, "gather_with_grad": True},
        "image_sizes": [3, 3],
        "text_sizes": [6, 6],
        "text_to_image": [[0, 0, 1, 1, 2, 2], [2, 1, 0, 0, 1, 2]],
        "level": [[0, 1, 0, 1, 0, 1], [1, 1, 0, 1, 0, 0]],
        "level_weights": [1.0, 0.25],
    }
    g = torch.Generator().manual_seed(123)
    for case in cases.values():
        case["x_img"] = torch.randn(sum(case["image_sizes"]), D_IN, generator=g, dtype=DT)
        case["x_txt"] = torch.randn(sum(case["text_sizes"]), D_IN, generator=g, dtype=DT)
        case["p_img"] = torch.randn(D_IN, D_OUT, generator=g, dtype=DT)
        case["p_txt"] = torch.randn(D_IN, D_OUT, generator=g, dtype=DT)
    return cases


def _run_case(case: dict, rank: int, world_size: int) -> dict[str, torch.Tensor]:
    """Forward/backward on this rank's slice; parameter gradients averaged over ranks like DDP."""
    import torch.distributed as dist

    if world_size == 1:  # the single-process reference sees the whole batch
        img_sizes, txt_sizes = [sum(case["image_sizes"])], [sum(case["text_sizes"])]
        i0, t0 = 0, 0
        owners = [
            o + sum(case["image_sizes"][:r]) for r, rank_owners in enumerate(case.get("text_to_image", []))
            for o in rank_owners
        ]
        levels = [lv for rank_levels in case.get("level", []) for lv in rank_levels]
    else:
        img_sizes, txt_sizes = case["image_sizes"], case["text_sizes"]
        i0, t0 = sum(img_sizes[:rank]), sum(txt_sizes[:rank])
        owners = case.get("text_to_image", [[]] * world_size)[rank]
        levels = case.get("level", [[]] * world_size)[rank]
    p_img = case["p_img"].clone().requires_grad_(True)
    p_txt = case["p_txt"].clone().requires_grad_(True)
    scale = torch.tensor(6.0, dtype=DT, requires_grad=True)
    bias = torch.tensor(-2.0, dtype=DT, requires_grad=True)
    img = F.normalize(case["x_img"][i0:i0 + img_sizes[rank]] @ p_img, dim=1)
    txt = F.normalize(case["x_txt"][t0:t0 + txt_sizes[rank]] @ p_txt, dim=1)
    img.retain_grad()
    txt.retain_grad()
    extra = {}
    if case["loss"] == "siglip":
        extra["logit_bias"] = bias
    if case["loss"] == "multi_positive":
        extra = {"text_to_image": torch.tensor(owners), "level": torch.tensor(levels),
                 "level_weights": case["level_weights"]}
    loss_fn = create_loss(case["loss"], **case["kwargs"])
    loss = loss_fn(img, txt, scale, **extra)
    loss.backward()
    params = {"p_img": p_img.grad, "p_txt": p_txt.grad, "scale": scale.grad,
              "bias": bias.grad if bias.grad is not None else torch.zeros((), dtype=DT)}
    if world_size > 1:
        for grad in params.values():
            dist.all_reduce(grad)
            grad /= world_size
    return {"loss": loss.detach(), "img_grad": img.grad, "txt_grad": txt.grad, **params}


def _worker(rank: int, world_size: int, init_file: str, data_path: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=60))
    try:
        cases = torch.load(data_path)
        results = {name: _run_case(case, rank, world_size) for name, case in cases.items()}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # both ranks are past their last collective before either tears gloo down
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_gather_matches_single_process(tmp_path: Path):
    import torch.multiprocessing as mp

    cases = _cases()
    torch.save(cases, tmp_path / "cases.pt")
    mp.spawn(_worker, args=(WORLD, str(tmp_path / "init"), str(tmp_path / "cases.pt"), str(tmp_path)),
             nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    for name, case in cases.items():
        full = _run_case(case, rank=0, world_size=1)
        local = [ranks[r][name] for r in range(WORLD)]
        if case["kwargs"].get("local_loss"):
            # each rank computes its own rows; their mean is the global-batch loss
            mean = sum(rank_out["loss"] for rank_out in local) / WORLD
            torch.testing.assert_close(mean, full["loss"], rtol=0, atol=1e-12, msg=name)
            assert not torch.isclose(local[0]["loss"], local[1]["loss"]), name
        else:
            for rank_out in local:  # every rank computes the full-batch loss
                torch.testing.assert_close(rank_out["loss"], full["loss"], rtol=0, atol=1e-12, msg=name)
        # features: the gradient reaching rank r's slice is WORLD x the full-batch gradient of that slice
        for key, sizes in (("img_grad", case["image_sizes"]), ("txt_grad", case["text_sizes"])):
            start = 0
            for r in range(WORLD):
                expected = WORLD * full[key][start:start + sizes[r]]
                torch.testing.assert_close(
                    local[r][key], expected, rtol=0, atol=1e-10, msg=f"{name} {key} rank {r}"
                )
                start += sizes[r]
        # parameters: the DDP average over ranks equals the single-process full-batch gradient
        for key in ("p_img", "p_txt", "scale", "bias"):
            for r in range(WORLD):
                torch.testing.assert_close(local[r][key], full[key], rtol=0, atol=1e-10, msg=f"{name} {key}")
        assert full["p_img"].abs().sum() > 1e-3, name


def test_loss_arguments_come_from_the_constructors_and_typos_are_named():
    from domainclip.core.errors import InputError
    from domainclip.core.losses import check_loss_arguments, loss_arguments

    assert loss_arguments("infoloob") == ["gather_with_grad", "hopfield", "hopfield_scale", "local_loss", "rank",
                                          "world_size"]
    check_loss_arguments("infoloob", {"hopfield": True})
    with pytest.raises(InputError, match=r"loss 'infoloob' takes no argument 'hopfeld' \(did you mean hopfield"):
        check_loss_arguments("infoloob", {"hopfeld": True})
