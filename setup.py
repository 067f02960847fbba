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
    entry_points={
        "console_scripts": ["dynasor = dynasor.cli:main"],
        "sglang.srt.plugins": ["dynasor = dynasor.srt.plugin:register"],
    },
)
