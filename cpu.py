"""The CPU's math-library setting, made before Paddle loads: every entry point imports this
module first.

Paddle's bundled MKL takes slow code paths on CPUs that are not Intel's unless
MKL_DEBUG_CPU_TYPE=5 is in the environment when it loads (measured on an AMD EPYC:
docs/benchmarks.md). Intel CPUs need nothing; a value the user set is kept. oneDNN
(Paddle Inference) and ONNX Runtime are not affected.
"""
from __future__ import annotations

import os
import platform

MKL_FLAG = "MKL_DEBUG_CPU_TYPE"


def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


VENDOR = _cpuinfo("vendor_id") or platform.processor() or "unknown"
MODEL = _cpuinfo("model name") or platform.machine()
USER_SET = MKL_FLAG in os.environ
if VENDOR == "AuthenticAMD" and not USER_SET:
    os.environ[MKL_FLAG] = "5"


def describe() -> str:
    """One line for a run's log: the CPU and the MKL setting, and who chose it."""
    value = os.environ.get(MKL_FLAG)
    how = "set by you" if USER_SET else ("set for this non-Intel CPU" if value else "not needed")
    return f"CPU {MODEL} ({VENDOR}); {MKL_FLAG}={value or 'unset'} ({how})"
