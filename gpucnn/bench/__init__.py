"""``gpucnn bench``: time every op and a full training step, side by side with PyTorch.

What is measured (see docs/benchmarks.md for results and method):

- **train**: one full training step (forward, softmax-CE + L2, backward, SGD update) of
  (a) ThreeLayerConvNet on 3x32x32 (32 filters 7x7 pad 3, hidden 500) and (b) an MNIST-sized net
  (1x28x28, 16 filters 5x5 pad 2, hidden 100), at the batches named by ``--configs``.
- **ops**: forward and backward of conv, max-pool, dropout, relu, linear and softmax-CE at the
  shapes of each config's layers.
- **naive**: a textbook loop convolution against ours at a small size.
- **sweep**: (a)'s training step over batch sizes and image sizes, with log-log exponents.

Timings are medians with the interquartile range over ``--reps`` repetitions after ``--warmup``
untimed ones; when PyTorch is installed the same models run in the same process with the same
shapes, dtype and thread count, alternating one gpucnn and one PyTorch repetition.  Peak memory
is the peak resident set of a fresh process that runs only that framework's steps (CPU), or the
allocator's peak (GPU).  Device-specific code is confined to :mod:`.timing` and :mod:`.memory`.

One concern per module: :mod:`.nets` (the networks, gpucnn's steps and ops), :mod:`.torch_twins`
(the same in PyTorch), :mod:`.timing`, :mod:`.memory`, :mod:`.machine`, :mod:`.counts`
(launches, allocations and syncs of one CUDA step, where the cupy in use can count them: the
stand-in of tests/fakecupy), :mod:`.suites` (the parts), :mod:`.report` (tables); the command
is :mod:`gpucnn.cli.bench`.
"""
