"""Part 7 and the model contract: RGB in [0, 1] of any size >= 32 in, N×10 logits out, under 6 MB."""
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
    stored_bytes = sum(t.numel() * t.element_size() for t in nb.compact_state_dict(model, nb.FILTER_BITS).values())
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


def test_pixel_repetition_is_undone(nb, model, cifar_dir):
    train_images, _, test_images, _ = nb.load_cifar10(cifar_dir, download=False)
    clean = train_images[:5000].float() / 255
    assert sum(o is not None for o in nb.drop_repeated_lines(clean)) <= 10  # gate: 99.9th percentile
    photos = test_images[:8].float() / 255
    for small in (F.interpolate(photos, size=(24, 20), mode="area"), photos):
        enlarged = F.interpolate(small, size=(32, 32) if small.shape[-1] < 32 else (64, 96), mode="nearest")
        assert all(torch.equal(o, s) for o, s in zip(nb.drop_repeated_lines(enlarged), small))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(enlarged), model(photos))
    assert nb.drop_repeated_lines(F.interpolate(photos, size=20, mode="area").repeat_interleave(2, -1)) == [None] * 8


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
    saved = torch.load(tmp_path / "a.pt")
    assert list(saved) == [nb.STORED_KEY] and saved[nb.STORED_KEY].dtype == torch.uint8
    compact = nb.compact_state_dict(model, nb.FILTER_BITS)
    inflated = nb.inflate(saved[nb.STORED_KEY], compact, nb.FILTER_BITS)
    assert inflated.keys() == compact.keys() and all(torch.equal(inflated[k], v) for k, v in compact.items())
    assert (tmp_path / "a.pt").stat().st_size < sum(t.numel() * t.element_size() for t in compact.values())


def test_the_compact_state_dict_loads_the_ordinary_way_and_a_float_one_still_does(nb, model, tmp_path):
    with torch.no_grad():
        for conv in (m.conv for m in model.modules() if isinstance(m, nb.myConvolution)):
            conv.weight.normal_()  # away from the dirac start, so that rounding shows
    nb.save_submission(model, tmp_path / "a.pt")
    saved = torch.load(tmp_path / "a.pt")
    fresh = nb.myResNet()
    fresh.load_state_dict(saved)  # strict, weights_only=True (the defaults)
    stored = nb.compact_state_dict(model, nb.FILTER_BITS)  # what the deflated tensor holds (checked in the test above)
    for key, value in model.state_dict().items():
        loaded = fresh.state_dict()[key]
        if key + "_int8" in stored:  # within half a level of its channel's scale
            half_level = stored[key + "_scale"].float().view(-1, 1, 1, 1) / 2
            assert ((loaded - value).abs() <= half_level * 1.01).all() and not torch.equal(loaded, value), key
        else:
            torch.testing.assert_close(loaded, value.half().to(value.dtype), rtol=0, atol=0)
    again = nb.myResNet()
    again.load_state_dict(fresh.state_dict())  # a float state_dict
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in again.state_dict().items())
    wrapped = torch.nn.ModuleDict({"net": nb.myResNet()})  # the hook reads keys under the model's prefix
    for state in (saved, stored):  # the .pt, and the compact state_dict it deflates
        wrapped.load_state_dict({f"net.{k}": v for k, v in state.items()})
        assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in wrapped["net"].state_dict().items())
    assert sorted(k for k in stored if k.endswith("_int8")) == sorted(
        k + "_int8" for k, v in model.state_dict().items() if k.endswith("conv.weight") and v.shape[-2:] == (3, 3))
    with pytest.raises(RuntimeError, match="stage1.widen.conv.weight_int8"):
        nb.myResNet().load_state_dict({k: v for k, v in stored.items() if k != "stage1.widen.conv.weight_scale"})
    assert sorted(k for k in stored if k.endswith(".vectors")) == sorted(
        name[:-len("gamma")] + "vectors" for name in model.state_dict() if name.endswith(".gamma"))
    assert not [k for k in stored if k.endswith(nb.BN_VECTORS)]  # each batch norm's four vectors as one tensor
    with pytest.raises(RuntimeError, match="stage1.norm.vectors"):
        nb.myResNet().load_state_dict(dict(stored, **{"stage1.norm.vectors": stored["stage1.norm.vectors"][:3]}))


def test_filter_bits_set_the_stored_levels(nb, model):
    with torch.no_grad():
        for conv in (m.conv for m in model.modules() if isinstance(m, nb.myConvolution)):
            conv.weight.normal_()
    per_bank = {"": 5, "stage1": 8, "stage1.block": 2, "stage3.block.residual.2": 3}
    for bits in (nb.FILTER_BITS, 4, 8, per_bank):
        banks = {k[:-len("_int8")]: t for k, t in nb.compact_state_dict(model, bits).items() if k.endswith("_int8")}
        assert len(banks) == 9
        for name, levels in banks.items():
            top = 2 ** (nb.bank_bits(name, bits) - 1) - 1
            assert levels.dtype == torch.int8 and levels.flatten(1).abs().amax(1).eq(top).all(), (bits, name)
        template = nb.compact_state_dict(model, 8)  # only the shapes and types of the template matter
        compact = nb.compact_state_dict(model, bits)
        stored = nb.inflate(nb.deflate(compact, bits), template, bits)
        assert all(torch.equal(a, b) for a, b in zip(stored.values(), compact.values())), bits
    widths = {name: nb.bank_bits(name, per_bank) for name in nb.filter_banks(model)}
    assert widths == {"stage1.widen.conv.weight": 8,  # the longest prefix wins...
                      "stage1.block.residual.0.0.conv.weight": 2, "stage1.block.residual.2.0.conv.weight": 2,
                      "stage2.widen.conv.weight": 5, "stage2.block.residual.0.0.conv.weight": 5,
                      "stage2.block.residual.2.0.conv.weight": 5, "stage3.widen.conv.weight": 5,
                      "stage3.block.residual.0.0.conv.weight": 5,  # ...and only the block's second convolution is at 3
                      "stage3.block.residual.2.0.conv.weight": 3}
    assert nb.bank_bits("stage10.widen.conv.weight", {"": 4, "stage1": 6}) == 4  # whole module names only
    assert nb.filter_widths(model, 4) == "4-bit" and nb.filter_widths(model, per_bank) == "2- to 8-bit"
    for written, read in ((4, 3), (dict(per_bank, **{"stage3.block.residual.2": 4}), per_bank)):
        stored = nb.deflate(nb.compact_state_dict(model, written), written)  # the same byte count either way
        with pytest.raises(ValueError, match="written with another FILTER_BITS"):
            nb.inflate(stored, template, read)
    for bits in (1, 9, 6.0, {"stage1": 4}, {"": 4, "stage2": 9}):
        with pytest.raises(ValueError, match="FILTER_BITS must be an integer from 2 to 8"):
            nb.compact_state_dict(model, bits)


def test_levels_pack_into_bytes_and_back_at_every_width(nb):
    assert [nb.levels_per_byte(bits) for bits in range(2, 9)] == [5, 2, 2, 1, 1, 1, 1]  # 3**5 = 243, 15**2 = 225
    generator = torch.Generator().manual_seed(0)
    for bits in range(2, 9):
        top = 2 ** (bits - 1) - 1
        for count in (1, 7, 1000):  # counts that leave the last byte part full
            levels = torch.randint(-top, top + 1, (count, 1, 1, 1), generator=generator).to(torch.int8)
            levels[0] = top
            packed = nb.pack_levels(levels, bits)
            assert packed.dtype == torch.uint8 and len(packed) == -(-count // nb.levels_per_byte(bits))
            assert torch.equal(nb.unpack_levels(packed, levels, bits), levels), (bits, count)
    pair = nb.pack_levels(torch.tensor([-7, 7], dtype=torch.int8), 4)  # digits 0 and 14 of base 15
    assert pair.tolist() == [14 * 15]


def test_the_state_dict_holds_every_tensor_once(model):
    """The whitening convolution is registered once (in the stem), so neither the .pt nor lookahead sees it twice."""
    state = model.state_dict()
    assert len({t.data_ptr() for t in state.values()}) == len(state)
    assert [k for k in state if "whiten" in k] == ["stem.whiten.conv.weight", "stem.whiten.conv.bias"]
