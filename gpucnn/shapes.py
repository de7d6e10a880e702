"""Window arithmetic shared by convolution and pooling on every device: plain integers, no arrays."""


def out_size(size: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output length of a window of ``k`` every ``stride`` over ``size`` padded by ``pad`` on both
    sides: (size + 2*pad - k) // stride + 1.  The one copy of the formula (conv, pool, models)."""
    return (size + 2 * pad - k) // stride + 1
