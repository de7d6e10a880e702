"""Naive loop implementations written straight from the seed formulas.

Slow and obviously right: the fast paths in gpucnn.functional must equal these.
"""
import numpy as np


def conv_forward(x, w, b, stride, pad):
    """The forward formula of the source document (seeds/000):
    out = sum_c sum_i sum_j x[c, oh*s + i, ow*s + j] * w[c, i, j] + b."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    out = np.zeros((N, F, OH, OW))
    for n in range(N):
        for f in range(F):
            for oh in range(OH):
                for ow in range(OW):
                    total = b[f]
                    for c in range(C):
                        for i in range(KH):
                            for j in range(KW):
                                total += xp[n, c, oh * stride + i, ow * stride + j] * w[f, c, i, j]
                    out[n, f, oh, ow] = total
    return out


def conv_weight_grad(x, dout, kshape, stride, pad):
    """The weight gradient of the source document (seeds/000): dw[f, c, m, n] = sum over images
    and output positions of dout[f, i, j] * x_pad[c, i*stride + m, j*stride + n]; db = sum of
    dout over all but F."""
    F, C, KH, KW = kshape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, _, OH, OW = dout.shape
    dw = np.zeros(kshape)
    for f in range(F):
        for c in range(C):
            for m in range(KH):
                for n in range(KW):
                    for b in range(N):
                        for i in range(OH):
                            for j in range(OW):
                                dw[f, c, m, n] += dout[b, f, i, j] * xp[b, c, i * stride + m, j * stride + n]
    return dw, dout.sum(axis=(0, 2, 3))


def correlate2d_valid(a, k):
    """Single-channel "valid" cross-correlation."""
    H, W = a.shape
    h, w = k.shape
    out = np.zeros((H - h + 1, W - w + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(a[i:i + h, j:j + w] * k)
    return out


def conv_input_grad(dout, w, x_shape, stride, pad):
    """The input-gradient derivation (seeds/003): dI = pad(dJ) (*) flip(K), the full convolution
    of dout with the flipped kernel.

    For stride > 1, dout is first dilated (stride - 1 zeros between entries); the result is for
    the padded input, so the padding border is cropped off at the end.
    """
    N, C, H, W = x_shape
    F, _, KH, KW = w.shape
    OH, OW = dout.shape[2:]
    Hp, Wp = H + 2 * pad, W + 2 * pad
    dx_pad = np.zeros((N, C, Hp, Wp))
    for n in range(N):
        for f in range(F):
            dil = np.zeros(((OH - 1) * stride + 1, (OW - 1) * stride + 1))
            dil[::stride, ::stride] = dout[n, f]
            full = np.pad(dil, ((KH - 1, KH - 1), (KW - 1, KW - 1)))
            for c in range(C):
                g = correlate2d_valid(full, w[f, c, ::-1, ::-1])  # flip(K)
                # rows/cols of the padded input that no window reached get no gradient
                dx_pad[n, c, :g.shape[0], :g.shape[1]] += g[:Hp, :Wp]
    return dx_pad[:, :, pad:pad + H, pad:pad + W]


def maxpool_forward_backward(x, dout, size, stride):
    """Max over each window; the gradient goes to the first maximum in row-major order (seeds/003)."""
    N, C, H, W = x.shape
    OH, OW = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.zeros((N, C, OH, OW))
    dx = np.zeros_like(x, dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    win = x[n, c, i * stride:i * stride + size, j * stride:j * stride + size]
                    k = int(np.argmax(win))  # numpy's argmax returns the first maximum
                    out[n, c, i, j] = win.flat[k]
                    dx[n, c, i * stride + k // size, j * stride + k % size] += dout[n, c, i, j]
    return out, dx
