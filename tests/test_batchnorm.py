"""Part 4: myBatchNorm against torch.nn.functional.batch_norm, the reference implementation."""
import io

import pytest
import torch
import torch.nn.functional as F


def reference_and_ours(nb, shape, momentum=0.9, seed=0):
    torch.manual_seed(seed)
    channels = shape[1]
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    ours = nb.myBatchNorm(channels, momentum=momentum).double()
    with torch.no_grad():
        ours.gamma.copy_(torch.rand(channels) + 0.5)
        ours.beta.copy_(torch.randn(channels))
        ours.moving_mean.copy_(torch.randn(channels))
        ours.moving_var.copy_(torch.rand(channels) + 0.5)
    gamma = ours.gamma.detach().clone().requires_grad_()
    beta = ours.beta.detach().clone().requires_grad_()
    running_mean, running_var = ours.moving_mean.clone(), ours.moving_var.clone()
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours = ours(x_ours)
    # F.batch_norm's momentum is the weight of the new batch; ours (as in the course) is the weight of the old value.
    y_ref = F.batch_norm(x_ref, running_mean, running_var, gamma, beta, training=True,
                         momentum=1 - momentum, eps=ours.eps)
    upstream = torch.randn_like(y_ref)
    (y_ours * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    return (y_ours, x_ours.grad, ours.gamma.grad, ours.beta.grad, ours.moving_mean, ours.moving_var), \
        (y_ref, x_ref.grad, gamma.grad, beta.grad, running_mean, running_var)


@pytest.mark.parametrize("shape", [(8, 5, 6, 7), (16, 5)])
def test_training_matches_reference(nb, shape):
    ours, ref = reference_and_ours(nb, shape)
    names = ("output", "input grad", "gamma grad", "beta grad", "moving mean", "moving var")
    for name, a, b in zip(names, ours, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"{name} differs from F.batch_norm")


def test_moving_statistics_follow_the_momentum_rule(nb):
    torch.manual_seed(1)
    bn = nb.myBatchNorm(3, momentum=0.8)
    x = torch.randn(10, 3, 4, 4) * 2 + 5
    bn(x)
    m = 10 * 4 * 4
    mean = x.mean(dim=(0, 2, 3))
    unbiased_var = x.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.moving_mean, 0.8 * 0 + 0.2 * mean)
    torch.testing.assert_close(bn.moving_var, 0.8 * 1 + 0.2 * unbiased_var)
    assert unbiased_var.mul(m - 1).div(m).sub(x.var(dim=(0, 2, 3), unbiased=False)).abs().max() < 1e-5


def test_without_grad_uses_moving_statistics_and_leaves_them(nb):
    bn = nb.myBatchNorm(4)
    with torch.no_grad():
        bn.moving_mean.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        bn.moving_var.copy_(torch.tensor([4.0, 1.0, 0.25, 9.0]))
        bn.gamma.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        bn.beta.fill_(0.5)
    x = torch.randn(6, 4, 3, 3)
    expected = (x - bn.moving_mean.view(1, 4, 1, 1)) / torch.sqrt(bn.moving_var.view(1, 4, 1, 1) + bn.eps)
    expected = bn.gamma.view(1, 4, 1, 1) * expected + 0.5
    before = (bn.moving_mean.clone(), bn.moving_var.clone())
    with torch.no_grad():
        torch.testing.assert_close(bn(x), expected)
    bn.eval()  # eval mode takes the same branch with gradients enabled, as nn.BatchNorm2d does
    torch.testing.assert_close(bn(x), expected)
    torch.testing.assert_close((bn.moving_mean, bn.moving_var), before)


def test_state_dict_round_trip_keeps_moving_statistics(nb):
    bn = nb.myBatchNorm(3)
    bn(torch.randn(8, 3, 5, 5) * 4 + 2)
    assert sorted(bn.state_dict()) == ["beta", "gamma", "moving_mean", "moving_var"]
    buffer = io.BytesIO()
    torch.save(bn.state_dict(), buffer)
    buffer.seek(0)
    fresh = nb.myBatchNorm(3)
    fresh.load_state_dict(torch.load(buffer))
    assert not torch.equal(fresh.moving_mean, torch.zeros(3))
    torch.testing.assert_close(fresh.moving_mean, bn.moving_mean, rtol=0, atol=0)
    torch.testing.assert_close(fresh.moving_var, bn.moving_var, rtol=0, atol=0)


def test_single_value_per_channel_is_refused_in_training(nb):
    with pytest.raises(ValueError, match="more than one value per channel"):
        nb.myBatchNorm(3)(torch.randn(1, 3))
