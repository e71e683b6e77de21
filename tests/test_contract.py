"""Part 7 and the model contract: RGB in [0, 1] of any size >= 32 in, N×10 logits out, under 6 MB."""
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="module")
def model(nb):
    torch.manual_seed(0)
    return nb.myResNet()


@pytest.mark.parametrize("height,width", [(32, 32), (40, 40), (96, 96), (33, 57)])
@pytest.mark.parametrize("training", [True, False])
def test_any_size_gives_n_by_10_logits(model, height, width, training):
    model.train(training)
    with torch.no_grad():
        logits = model(torch.rand(3, 3, height, width))
    assert logits.shape == (3, 10) and logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_builds_with_no_arguments_and_fits_6_mb(nb, model):
    state = model.state_dict()
    fp32_bytes = sum(t.numel() * 4 for t in state.values() if t.is_floating_point())
    assert fp32_bytes < 6e6, f"{fp32_bytes:,} bytes in fp32"
    stored_bytes = sum(t.numel() * t.element_size() for t in nb.stored_state_dict(model).values())
    assert stored_bytes < fp32_bytes / 3.9, f"{stored_bytes:,} bytes stored"


def test_eval_averages_six_views(nb, model):
    """The image and its one-pixel diagonal shifts, each with its mirror image, weighted 1/2, 1/4, 1/4."""
    model.eval()
    # smooth, so the denoiser passes it; corners aligned, so no edge row or column repeats its neighbour
    x = F.interpolate(torch.rand(2, 3, 8, 8), size=32, mode="bilinear", align_corners=True)
    assert torch.equal(nb.denoise(x), x)
    padded = nb.reflect_pad(x, 1)
    views = [x, padded[..., :-2, :-2], padded[..., 2:, 2:]]
    with torch.no_grad():
        mirrored = [(model.logits(v) + model.logits(v.flip(-1))) / 2 for v in views]
        torch.testing.assert_close(model(x), mirrored[0] / 2 + (mirrored[1] + mirrored[2]) / 4,
                                   rtol=1e-5, atol=1e-5)


def area_resample(x, dim, size):
    """Exact area resampling along one axis: repeat every pixel `size` times, then average runs of the old length."""
    length = x.shape[dim]
    stretched = x.repeat_interleave(size, dim=dim).movedim(dim, -1)
    return stretched.reshape(*stretched.shape[:-1], size, length).mean(-1).movedim(-1, dim)


@pytest.mark.parametrize("height,width", [(96, 96), (64, 64), (33, 57), (32, 48), (50, 32)])
def test_long_sides_are_area_resampled_to_32(nb, height, width):
    x = torch.rand(2, 3, height, width, dtype=torch.float64)
    expected = area_resample(area_resample(x, 2, 32), 3, 32)
    torch.testing.assert_close(nb.shrink(x.float(), 32), expected.float(), rtol=1e-5, atol=1e-5)


def test_short_sides_are_kept(nb):
    small = torch.rand(2, 3, 24, 32)
    assert nb.shrink(small, 32) is small
    x = torch.rand(2, 3, 24, 40, dtype=torch.float64)
    torch.testing.assert_close(nb.shrink(x.float(), 32), area_resample(x, 3, 32).float(), rtol=1e-5, atol=1e-5)


def test_upsampled_input_scores_like_the_original(model):
    """A 32×32 image enlarged to 64 or 96 pixels is brought back to (nearly) itself before the network sees it."""
    model.eval()
    x = F.interpolate(torch.rand(4, 3, 8, 8), size=32, mode="bilinear", align_corners=True)  # smooth, like a photo
    with torch.no_grad():
        for size in (64, 96):
            big = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            torch.testing.assert_close(model(big), model(x), rtol=0, atol=0.05)


def test_grayscale_is_repeated_to_rgb(model):
    model.eval()
    gray = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(gray), model(gray.expand(-1, 3, -1, -1)))


def test_uint8_input_is_rescaled(model):
    model.eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.float() / 255))


def test_only_flat_images_are_stretched_to_the_contrast_floor(nb):
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    flat = mean + (x - mean) * 0.1  # std about 0.03, far below the floor
    torch.testing.assert_close(nb.raise_contrast(x), x)
    stretched = nb.raise_contrast(flat)
    torch.testing.assert_close(stretched.mean(dim=(1, 2, 3)), flat.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(stretched.std(dim=(1, 2, 3), correction=0), torch.full((4,), nb.CONTRAST_FLOOR))
    constant = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(nb.raise_contrast(constant), constant)


def test_contrast_below_the_floor_does_not_change_the_prediction(model):
    model.eval()
    # smooth, so the denoiser passes it; corners aligned, so no edge row or column repeats its neighbour
    x = F.interpolate(torch.rand(2, 3, 8, 8), size=32, mode="bilinear", align_corners=True)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    faint, fainter = mean + (x - mean) * 0.2, mean + (x - mean) * 0.05
    with torch.no_grad():
        torch.testing.assert_close(model(faint), model(fainter), rtol=1e-4, atol=1e-4)


def test_flattest_block_noise_times_the_strength_estimates_the_std_of_white_noise(nb):
    torch.manual_seed(0)
    for sigma in (0.02, 0.05, 0.1):
        ratio = nb.DENOISE_STRENGTH * nb.flattest_block_noise(torch.randn(256, 1, 32, 32) * sigma) / sigma
        assert 0.85 < ratio.mean() < 1.05 and 0.5 < ratio.min() and ratio.max() < 1.35, (sigma, ratio)


def test_denoiser_leaves_clean_photos_alone_and_cleans_noisy_ones(nb, cifar_dir):
    train_images, _, test_images, _ = nb.load_cifar10(cifar_dir, download=False)
    clean = train_images[:5000].float() / 255
    changed = (nb.denoise(clean) != clean).flatten(1).any(1)
    assert changed.float().mean() <= 0.002  # the gate sits at the 99.9th percentile of training images
    photos = test_images[:200].float() / 255
    noisy = (photos + torch.randn(photos.shape, generator=torch.Generator().manual_seed(0)) * 0.06).clamp(0, 1)
    denoised = nb.denoise(noisy)
    assert (denoised != noisy).flatten(1).any(1).all()
    assert (denoised - photos).square().mean() < 0.5 * (noisy - photos).square().mean()


def salt_and_pepper(images, share, seed=0):
    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    return torch.where(u < share / 2, 0.0, torch.where(u > 1 - share / 2, 1.0, images))


def test_impulses_are_removed_from_spotted_photos_only(nb, cifar_dir):
    train_images, _, test_images, _ = nb.load_cifar10(cifar_dir, download=False)
    clean = train_images[:5000].float() / 255
    assert (nb.remove_impulses(clean) != clean).flatten(1).any(1).float().mean() <= 0.002  # gate: 99.9th percentile
    photos = test_images[:200].float() / 255
    for share in (0.01, 0.05):
        spotted = salt_and_pepper(photos, share)
        repaired = nb.remove_impulses(spotted)
        assert (repaired != spotted).flatten(1).any(1).all()
        assert (repaired - photos).square().mean() < 0.2 * (spotted - photos).square().mean(), share


def test_nearest_enlargement_by_a_whole_factor_is_read_as_the_original(nb, model, cifar_dir):
    _, _, test_images, _ = nb.load_cifar10(cifar_dir, download=False)
    photos = test_images[:8].float() / 255
    assert torch.equal(nb.shrink(photos.repeat_interleave(2, -1).repeat_interleave(2, -2), 32), photos)
    tripled = F.interpolate(photos, scale_factor=3, mode="nearest")
    torch.testing.assert_close(nb.shrink(tripled, 32), photos, rtol=0, atol=1e-6)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tripled), model(photos), rtol=1e-4, atol=1e-4)


def test_noisy_images_are_denoised_except_in_training(nb):
    """Training (train mode with gradients) skips the repairs; eval mode, or train mode under no_grad, runs them."""
    model = nb.myResNet()
    x = (torch.rand(2, 3, 32, 32) * 0.2 + 0.4 + torch.randn(2, 3, 32, 32) * 0.08).clamp(0, 1)
    assert not torch.equal(nb.denoise(x), x)
    calls = []
    original = nb.denoise
    nb.denoise = lambda images: calls.append(len(images)) or original(images)
    try:
        model.train()
        model(x)
        assert calls == []
        with torch.no_grad():
            model(x)
        assert calls == [2]
        model.eval()
        model(x)
        assert calls == [2, 2]
    finally:
        nb.denoise = original


def test_the_same_weights_save_to_the_same_bytes(nb, model, tmp_path):
    nb.save_submission(model, tmp_path / "a.pt")
    nb.save_submission(model, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_the_pt_names_the_network_parts_and_shares_one_buffer_per_dtype(nb, model, tmp_path):
    saved = nb.stored_state_dict(model)
    assert list(saved) == ["stem.rest"] + [f"stage{i}.{name}" for i in (1, 2, 3) for name in (
        "filters.coded", "filters.widths", "filters.tables", "filters.scales", "rest")] + ["head.rest"]
    assert {t.dtype for k, t in saved.items() if k.endswith(("coded", "widths", "tables"))} == {torch.int16}
    assert {t.dtype for k, t in saved.items() if k.endswith(("scales", "rest"))} == {torch.float16}
    assert len({t.untyped_storage().data_ptr() for t in saved.values()}) == 2  # one buffer per dtype
    nb.save_submission(model, tmp_path / "a.pt")
    with zipfile.ZipFile(tmp_path / "a.pt") as archive:
        assert len([n for n in archive.namelist() if "/data/" in n]) == 2
    loaded = torch.load(tmp_path / "a.pt")  # weights_only=True, the default
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], v) for k, v in saved.items())


def test_the_stored_state_dict_loads_the_ordinary_way_and_a_float_one_still_does(nb, model, tmp_path):
    with torch.no_grad():
        for conv in (m.conv for m in model.modules() if isinstance(m, nb.myConvolution)):
            conv.weight.normal_()  # away from the dirac start, so that rounding shows
        for norm in (m for m in model.modules() if isinstance(m, nb.myBatchNorm)):
            norm.gamma.uniform_(0.5, 2)  # learned, so stored
            norm.beta.normal_()
            norm.moving_var.uniform_(0.5, 2)
    nb.save_submission(model, tmp_path / "a.pt")
    fresh = nb.myResNet()
    fresh.load_state_dict(torch.load(tmp_path / "a.pt"))  # strict, weights_only=True (the defaults)
    banks = nb.filter_banks(model)
    for key, value in model.state_dict().items():
        loaded = fresh.state_dict()[key]
        if key in banks:  # within half a level of its channel's scale
            half_level = nb.filter_levels(value, nb.bank_bits(key, nb.FILTER_BITS))[1].float().view(-1, 1, 1, 1) / 2
            assert ((loaded - value).abs() <= half_level * 1.01).all() and not torch.equal(loaded, value), key
        else:
            torch.testing.assert_close(loaded, value.half().to(value.dtype), rtol=0, atol=0)
    again = nb.myResNet()
    again.load_state_dict(fresh.state_dict())  # a float state_dict
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in again.state_dict().items())
    stored = nb.stored_state_dict(model)
    with pytest.raises(RuntimeError, match="Unexpected key.*extra"):
        nb.myResNet().load_state_dict(dict(stored, extra=torch.zeros(1)))  # strict loading still reports
    with pytest.raises(ValueError, match="does not hold weights for this notebook's myResNet"):
        nb.myResNet().load_state_dict({k: v for k, v in stored.items() if k != "stage1.filters.scales"})
    with pytest.raises(ValueError, match="does not hold weights for this notebook's myResNet"):
        nb.myResNet().load_state_dict(dict(stored, **{"stage2.rest": stored["stage2.rest"][:-1]}))


def test_every_width_round_trips_exactly_and_travels_with_the_pt(nb, model):
    with torch.no_grad():
        for conv in (m.conv for m in model.modules() if isinstance(m, nb.myConvolution)):
            conv.weight.normal_()
    per_bank = {"": 5, "stage1": 8, "stage1.block": 2, "stage3.block.residual.2": 3}
    banks = nb.filter_banks(model)
    for bits in (2, 3, 4, 5, 6, 7, 8, per_bank):
        expanded = nb.expand_stored(nb.myResNet(), nb.stored_state_dict(model, bits))  # whatever FILTER_BITS says
        for name, weight in banks.items():
            assert torch.equal(expanded[name], nb.filter_values(*nb.filter_levels(weight, nb.bank_bits(name, bits))))
    widths = {name: nb.bank_bits(name, per_bank) for name in banks}
    assert widths == {"stage1.widen.conv.weight": 8,  # the longest prefix wins...
                      "stage1.block.residual.0.0.conv.weight": 2, "stage1.block.residual.2.0.conv.weight": 2,
                      "stage2.widen.conv.weight": 5, "stage2.block.residual.0.0.conv.weight": 5,
                      "stage2.block.residual.2.0.conv.weight": 5, "stage3.widen.conv.weight": 5,
                      "stage3.block.residual.0.0.conv.weight": 5,  # ...and only the block's second convolution is at 3
                      "stage3.block.residual.2.0.conv.weight": 3}
    assert nb.bank_bits("stage10.widen.conv.weight", {"": 4, "stage1": 6}) == 4  # whole module names only
    assert nb.filter_widths(model, 4) == "4-bit" and nb.filter_widths(model, per_bank) == "2- to 8-bit"
    stored = nb.stored_state_dict(model, per_bank)
    assert stored["stage1.filters.widths"].tolist() == [8, 2, 2]
    for damaged in ([8, 2, 3], [8, 2, 9], [8, 2]):  # a width the stream was not written at, out of range, missing
        with pytest.raises(ValueError, match="another architecture or another storage format|damaged"):
            nb.expand_stored(nb.myResNet(), {**stored, "stage1.filters.widths": torch.tensor(damaged)})
    for bits in (1, 9, 6.0, {"stage1": 4}, {"": 4, "stage2": 9}):
        with pytest.raises(ValueError, match="FILTER_BITS must be an integer from 2 to 8"):
            nb.stored_state_dict(model, bits)


@pytest.mark.parametrize("alphabet", [3, 7, 15, 31, 63, 127, 255])
def test_rans_round_trips_any_symbols_and_ends_where_it_began(nb, alphabet):
    rng = np.random.default_rng(alphabet)
    for n_lanes, steps in ((1, 1), (3, 50), (16, 200)):
        classes = rng.integers(0, nb.SCALE_CLASSES, (steps, n_lanes))
        skew = rng.dirichlet(np.full(alphabet, 0.3), nb.SCALE_CLASSES)  # some symbols far rarer than others
        symbols = np.stack([[rng.choice(alphabet, p=skew[c]) for c in row] for row in classes])
        tables = nb.level_tables(symbols.flatten(), classes.flatten(), alphabet)
        assert (tables.sum(1) == 1 << nb.PRECISION).all() and (tables >= 1).all()
        words = nb.rans_encode(symbols, classes, tables)
        decoded, used = nb.rans_decode(words, classes, tables)
        assert np.array_equal(decoded, symbols) and used == len(words)


def test_rans_comes_close_to_the_entropy(nb):
    rng = np.random.default_rng(0)
    probabilities = np.array([0.6, 0.15, 0.15, 0.04, 0.04, 0.01, 0.01])
    symbols = rng.choice(7, size=(4096, 16), p=probabilities)
    classes = np.zeros_like(symbols)
    tables = nb.level_tables(symbols.flatten(), classes.flatten(), 7)
    bits = 16 * len(nb.rans_encode(symbols, classes, tables))
    entropy = -(probabilities * np.log2(probabilities)).sum() * symbols.size
    assert bits < 1.01 * entropy + 32 * 16  # within 1% of the entropy, plus the lanes' final states


def test_a_damaged_stream_raises(nb):
    rng = np.random.default_rng(1)
    classes = np.zeros((500, 8), dtype=np.int64)
    symbols = rng.choice(15, size=classes.shape, p=np.r_[0.5, np.full(14, 0.5 / 14)])
    tables = nb.level_tables(symbols.flatten(), classes.flatten(), 15)
    words = nb.rans_encode(symbols, classes, tables)
    with pytest.raises(ValueError, match="damaged"):
        nb.rans_decode(words[:len(words) // 2], classes, tables)  # cut short
    flipped = words.copy()
    flipped[len(words) // 2] ^= 0x5A5A
    with pytest.raises(ValueError, match="damaged"):
        nb.rans_decode(flipped, classes, tables)


def test_the_state_dict_holds_every_tensor_once(model):
    """The whitening convolution is registered once (in the stem), so neither the .pt nor lookahead sees it twice."""
    state = model.state_dict()
    assert len({t.data_ptr() for t in state.values()}) == len(state)
    assert [k for k in state if "whiten" in k] == ["stem.whiten.conv.weight", "stem.whiten.conv.bias"]
