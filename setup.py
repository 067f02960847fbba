"""Dynasor: serving LLM reasoning programs on SGLang with certaindex.

``kernels/`` and ``scheduler/`` live at the top of the repository but install as
``dynasor.kernels`` and ``dynasor.scheduler``, so there is one import root.
"""

from setuptools import find_packages, setup

packages = (
    find_packages("python", exclude=["cpu_shim", "cpu_shim.*"])
    + ["dynasor.kernels" + p.removeprefix("kernels") for p in find_packages(".", include=["kernels", "kernels.*"])]
    + ["dynasor.scheduler" + p.removeprefix("scheduler") for p in find_packages(".", include=["scheduler", "scheduler.*"])]
)

setup(
    name="dynasor",
    version="0.1.0",
    description="LLM serving for reasoning programs with certaindex, on the SGLang runtime",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"": "python", "dynasor.kernels": "kernels", "dynasor.scheduler": "scheduler"},
    # The hooks are written against this SGLang release (dynasor.srt.sglang_version checks it at start).
    install_requires=["httpx", "sglang==0.5.23"],
    # SGLang's router in front of several Dynasor servers; 1.10 is the first release that keeps
    # sampling_params.custom_params (Dynasor's tags) on /generate (dynasor/core/routing.py).
    extras_require={"router": ["smg>=1.10"]},
    entry_points={
        "console_scripts": ["dynasor = dynasor.cli:main"],
        "sglang.srt.plugins": ["dynasor = dynasor.srt.plugin:register"],
    },
)
