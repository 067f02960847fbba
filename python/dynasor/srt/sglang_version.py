"""The SGLang release Dynasor's hooks were written against, and the start-up check of it.

Every hook target (``hooks.py``) is an internal of this release; another release may rename one,
and SGLang's HookRegistry would then only log the failure. So a Dynasor server refuses to start on
another release unless ``--dynasor-allow-unsupported-sglang`` is given (then it warns), and the
hook self-check (``hooks.verify_hooks``) still refuses a server whose hooks did not all apply.
"""

from __future__ import annotations

import logging

SUPPORTED_SGLANG_VERSION = "0.5.23"

logger = logging.getLogger(__name__)


class UnsupportedSGLangError(RuntimeError):
    pass


def installed_sglang_version() -> str:
    import sglang

    return str(getattr(sglang, "__version__", "unknown"))


def check_sglang_version(allow_unsupported: bool) -> str:
    """The installed version; raises ``UnsupportedSGLangError`` unless it is the supported one or
    ``allow_unsupported`` (then a warning is logged)."""
    installed = installed_sglang_version()
    if installed == SUPPORTED_SGLANG_VERSION:
        return installed
    message = (f"Dynasor supports sglang=={SUPPORTED_SGLANG_VERSION}, but sglang {installed} is installed: "
               "its hooks patch SGLang internals of that release")
    if not allow_unsupported:
        raise UnsupportedSGLangError(message + "; install sglang==" + SUPPORTED_SGLANG_VERSION +
                                     " or pass --dynasor-allow-unsupported-sglang to try anyway")
    logger.warning("%s; starting anyway (--dynasor-allow-unsupported-sglang)", message)
    return installed
