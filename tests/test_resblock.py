"""Part 6: myResBlock shapes, shortcut type and the residual sum."""
import pytest
import torch


@pytest.mark.parametrize("in_channels,out_channels,stride,size", [
    (16, 16, 1, 8), (16, 32, 1, 8), (16, 16, 2, 8), (16, 32, 2, 9)])
def test_shapes(nb, in_channels, out_channels, stride, size):
    block = nb.myResBlock(in_channels, out_channels, stride)
    y = block(torch.randn(2, in_channels, size, size))
    expected = (size + 2 - 3) // stride + 1
    assert y.shape == (2, out_channels, expected, expected)
    projection = stride != 1 or in_channels != out_channels
    assert isinstance(block.shortcut, torch.nn.Identity) != projection


def zero_residual(block):
    last_bn = block.residual[-1][-1]
    with torch.no_grad():
        last_bn.gamma.zero_()
        last_bn.beta.zero_()


def test_identity_shortcut_is_added(nb):
    block = nb.myResBlock(8, 8)
    x = torch.randn(4, 8, 6, 6)
    zero_residual(block)
    torch.testing.assert_close(block(x), torch.relu(x))  # only the shortcut is left
    with torch.no_grad():
        block.residual[-1][-1].beta.fill_(1.0)
    torch.testing.assert_close(block(x), torch.relu(x + 1.0))


def test_projection_shortcut_is_added(nb):
    block = nb.myResBlock(8, 16, stride=2)
    x = torch.randn(4, 8, 6, 6)
    zero_residual(block)
    torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))
