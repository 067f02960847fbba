"""Kernel tests run the Triton kernels through Triton's interpreter when there is no GPU.

The interpreter is chosen when a kernel is decorated, so the variable must be set before the
kernel module is imported: this conftest is imported before the test modules beside it.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
