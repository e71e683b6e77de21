"""Part 7 and the model contract: RGB in [0, 1] of any size >= 32 in, N×10 logits out, under 6 MB."""
import pytest
import torch


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
    assert sum(t.numel() * t.element_size() for t in nb.fp16_state_dict(model).values()) < fp32_bytes / 1.9


def test_eval_averages_the_mirror_image(model):
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(-1)), rtol=1e-5, atol=1e-5)


def test_uint8_input_is_rescaled(model):
    model.eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.float() / 255))


def test_wrong_layout_is_a_clear_error(model):
    with pytest.raises(ValueError, match="N×3×H×W"):
        model(torch.rand(2, 32, 32, 3))
