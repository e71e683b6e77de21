"""The model reads what a grader's pipeline gives it: [0, 1] or 0-255 floats, uint8, per-channel Normalize'd
tensors, RGBA or grayscale, any batch size, device and memory format; anything else is a clear ValueError."""
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from tools.notebook import REPO

CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PIPELINES = {  # what each pipeline makes of ToTensor's [0, 1] floats (uint8 images / 255)
    "ToTensor": lambda x: x,
    "uint8": lambda x: (x * 255).round().to(torch.uint8),
    "Normalize(0.5, 0.5)": transforms.Normalize((0.5,) * 3, (0.5,) * 3),
    "Normalize(CIFAR-10)": transforms.Normalize(*CIFAR10),
    "Normalize(ImageNet)": transforms.Normalize(*IMAGENET),
    "0-255 floats": lambda x: x * 255,
}


@pytest.fixture(scope="module")
def submitted(nb):
    return nb.load_submission(REPO / "StudentID_submission.pt")


@pytest.fixture(scope="module")
def photos(nb, cifar_dir):
    _, _, images, _ = nb.load_cifar10(cifar_dir)
    return images[:500].float() / 255


def predictions(model, x, batch_size):
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


@pytest.fixture(scope="module")
def reference(submitted, photos):
    return predictions(submitted, photos, 250)


@pytest.mark.parametrize("batch_size", [1, 250])
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_every_pipeline_predicts_like_to_tensor(submitted, photos, reference, pipeline, batch_size):
    predicted = predictions(submitted, PIPELINES[pipeline](photos), batch_size)
    assert (predicted == reference).double().mean() >= 0.99


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_every_pipeline_is_read_back_to_the_same_pixels(nb, photos, pipeline):
    for batch in (photos, photos[:1], photos[7:8]):
        pixels, how = nb.read_images(PIPELINES[pipeline](batch))
        assert torch.equal(pixels, batch), how


def test_float_pipelines_are_recognised(nb, photos):
    names = {pipeline: nb.read_images(PIPELINES[pipeline](photos[:64]))[1] for pipeline in PIPELINES}
    assert names == {"ToTensor": "[0, 1] floats (ToTensor), 8-bit", "uint8": "integers 0-255",
                     "Normalize(0.5, 0.5)": "Normalize(0.5, 0.5), 8-bit",
                     "Normalize(CIFAR-10)": "Normalize(CIFAR-10 mean, std), 8-bit",
                     "Normalize(ImageNet)": "Normalize(ImageNet mean, std), 8-bit",
                     "0-255 floats": "0-255 floats, 8-bit"}


def test_resized_tensors_without_the_8_bit_grid_are_read_by_their_range(nb, photos):
    """Bilinear resizing of normalized tensors leaves no 8-bit grid: a batch's range tells the pipeline."""
    expected = F.interpolate(photos[:64], size=48, mode="bilinear", antialias=True)
    for mean, std in (CIFAR10, IMAGENET, ((0.5,) * 3, (0.5,) * 3)):
        normalized = F.interpolate(transforms.Normalize(mean, std)(photos[:64]), size=48, mode="bilinear",
                                   antialias=True)
        pixels, how = nb.read_images(normalized)
        assert "8-bit" not in how
        torch.testing.assert_close(pixels, expected, rtol=0, atol=1e-5)


def test_an_unknown_normalization_is_stretched_to_the_batch_range(nb, photos):
    mean, std = (0.45, 0.45, 0.45), (0.1, 0.1, 0.1)
    pixels, how = nb.read_images(transforms.Normalize(mean, std)(photos))
    assert how.startswith("unknown")
    low = photos.amin(dim=(0, 2, 3)).view(1, 3, 1, 1)
    high = photos.amax(dim=(0, 2, 3)).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels, (photos - low) / (high - low), rtol=0, atol=1e-5)


def test_a_bright_image_normalized_with_one_half_is_not_read_as_unnormalized(nb, photos):
    """(x - 0.5) / 0.5 of an image with every pixel >= 0.5 lies in [0, 1], but only on odd levels of 255."""
    bright = 0.5 + photos[:4] / 2
    bright = (bright * 255).round() / 255
    pixels, how = nb.read_images(transforms.Normalize((0.5,) * 3, (0.5,) * 3)(bright))
    assert how == "Normalize(0.5, 0.5), 8-bit" and torch.equal(pixels, bright)


def test_rgba_and_grayscale(nb, submitted, photos):
    x = photos[:4]
    rgba = torch.cat([x, torch.ones_like(x[:, :1])], 1)
    with torch.no_grad():
        assert torch.equal(submitted(rgba), submitted(x))
        gray = x.mean(1, keepdim=True)
        torch.testing.assert_close(submitted(gray), submitted(gray.expand(-1, 3, -1, -1)))


def test_an_empty_batch_gives_no_scores(submitted):
    with torch.no_grad():
        for x in (torch.zeros(0, 3, 32, 32), torch.zeros(0, 3, 32, 32, dtype=torch.uint8)):
            scores = submitted(x)
            assert scores.shape == (0, 10) and scores.dtype == torch.float32


@pytest.mark.parametrize("bad,message", [
    (torch.full((2, 3, 32, 32), float("nan")), "NaN or infinite"),
    (torch.rand(2, 3, 32, 32).index_put_((torch.tensor([0]),), torch.tensor(float("inf"))), "NaN or infinite"),
    (torch.rand(2, 2, 32, 32), "C = 3"),
    (torch.rand(2, 5, 32, 32), "C = 3"),
    (torch.rand(3, 32, 32), "unsqueeze"),
    (torch.rand(32, 32), "N×C×H×W"),
    (torch.rand(2, 32, 32, 3), "permute"),
    (torch.rand(2, 3, 15, 32), "at least 16×16"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.bool), "dtype"),
    (torch.full((2, 3, 32, 32), 300, dtype=torch.int64), "0-255"),
    (torch.rand(2, 3, 32, 32).numpy(), "torch.Tensor"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(submitted, bad, message):
    before = {k: v.clone() for k, v in submitted.state_dict().items()}
    for training in (False, True):
        submitted.train(training)
        with pytest.raises(ValueError, match=message) as info, torch.no_grad():
            submitted(bad)
        assert "got" in str(info.value)
    submitted.eval()
    assert all(torch.equal(v, before[k]) for k, v in submitted.state_dict().items())


def test_no_grad_in_train_mode_gives_the_eval_predictions(submitted, photos):
    x = photos[:16]
    with torch.no_grad():
        submitted.eval()
        expected = submitted(x)
        submitted.train()
        try:
            got = submitted(x)
        finally:
            submitted.eval()
    assert torch.equal(got, expected)


def test_memory_format_does_not_matter(submitted, photos):
    x = PIPELINES["Normalize(CIFAR-10)"](photos[:16])
    with torch.no_grad():
        torch.testing.assert_close(submitted(x.contiguous(memory_format=torch.channels_last)), submitted(x.contiguous()),
                                   rtol=1e-5, atol=1e-5)


def test_a_prediction_depends_on_its_own_image_only(nb, submitted, photos):
    """A mixed batch (clean, noisy, salt-and-pepper, pixelated) scores each image as it scores alone."""
    clean = photos[:2]
    noisy = (photos[2:4] + 0.08 * torch.randn(photos[2:4].shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    u = torch.rand(photos[4:6].shape, generator=torch.Generator().manual_seed(1))
    spotted = torch.where(u < 0.025, 0.0, torch.where(u > 0.975, 1.0, photos[4:6]))
    enlarged = F.interpolate(F.interpolate(photos[6:8], size=16, mode="area"), size=32, mode="nearest")
    x = torch.cat([clean, noisy, spotted, enlarged])
    with torch.no_grad():
        together = submitted(x)
        alone = torch.cat([submitted(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_model_reads_cpu_or_cuda_input_alike(nb, photos):
    model = nb.load_submission(REPO / "StudentID_submission.pt", "cuda")
    x = PIPELINES["Normalize(ImageNet)"](photos[:64])
    with torch.no_grad():
        on_cpu, on_cuda = model(x), model(x.cuda())
    assert on_cuda.device.type == "cuda" and torch.equal(on_cpu, on_cuda)
    assert (on_cuda.argmax(1).cpu() == predictions(nb.load_submission(REPO / "StudentID_submission.pt"), photos[:64],
                                                   64)).double().mean() >= 0.98
