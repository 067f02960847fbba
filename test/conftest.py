"""Kernel tests run the Triton kernels through Triton's interpreter when there is no GPU.

Triton reads ``TRITON_INTERPRET`` when it is imported and when a kernel is decorated, so the
variable must be set before anything imports triton: this root conftest is loaded before every
test module (integration modules import SGLang, which imports triton). Servers started by the
tests do not inherit it (``dynasor.evaluation.server_process`` drops it).
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
