"""Window arithmetic shared by convolution and pooling on every device: plain integers, no arrays."""


def out_size(size: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output length of a window of ``k`` every ``stride`` over ``size`` padded by ``pad`` on both
    sides: (size + 2*pad - k) // stride + 1.  The one copy of the formula (conv, pool, models)."""
    return (size + 2 * pad - k) // stride + 1


def same_padding(padding, kernel_size, stride: int = 1):
    """``padding`` as an int: "same" is (k - 1) // 2, which keeps the size of an input for an odd
    square kernel ``k`` at stride 1 (as torch's ``padding="same"``); other values pass through.
    "same" with an even or non-square kernel, or a stride above 1, is a ValueError."""
    if padding != "same":
        return padding
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"padding='same' with kernel_size={kernel_size!r}: expected an odd "
                         f"square kernel (an even one would need uneven padding)")
    if stride != 1:
        raise ValueError(f"padding='same' with stride={stride}: expected stride 1 (as torch)")
    return (kh - 1) // 2
