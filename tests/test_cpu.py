"""cpu.py: MKL's fast code paths on CPUs that are not Intel's, set before Paddle loads and
never over a value the user chose."""
import os
import subprocess
import sys

from conftest import ROOT

PROBE = ("import cpu, os; print(os.environ.get('MKL_DEBUG_CPU_TYPE'), '|', cpu.describe())")


def probe(vendor: str, env_value: str | None) -> str:
    """cpu.py in a fresh process, with /proc/cpuinfo's vendor replaced."""
    code = (f"import builtins, io; real = builtins.open\n"
            f"def fake(path, *a, **k):\n"
            f"    if path == '/proc/cpuinfo':\n"
            f"        return io.StringIO('vendor_id\\t: {vendor}\\nmodel name\\t: Test CPU\\n')\n"
            f"    return real(path, *a, **k)\n"
            f"builtins.open = fake\n{PROBE}")
    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    if env_value is not None:
        env["MKL_DEBUG_CPU_TYPE"] = env_value
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_amd_gets_the_fast_setting_intel_nothing_and_the_user_wins():
    assert probe("AuthenticAMD", None) == ("5 | CPU Test CPU (AuthenticAMD); MKL_DEBUG_CPU_TYPE=5 "
                                           "(set for this non-Intel CPU)")
    assert probe("GenuineIntel", None).startswith("None | CPU Test CPU (GenuineIntel); "
                                                  "MKL_DEBUG_CPU_TYPE=unset (not needed)")
    assert probe("AuthenticAMD", "2").startswith("2 | ") and "(set by you)" in probe("AuthenticAMD", "2")


def test_entry_points_import_cpu_before_paddle():
    for script in ("small.py", "teacher.py", "bert_distill.py", "export.py", "predict.py",
                   "pipeline.py", "convert.py", "bench/train_speed.py", "bench/inference.py",
                   "bench/teacher_speed.py", "bench/distill_speed.py"):
        lines = open(os.path.join(ROOT, script), encoding="utf-8").read().splitlines()
        imports = [l for l in lines if l.startswith(("import ", "from ")) and "__future__" not in l]
        first_local = next(i for i, l in enumerate(imports) if l.startswith("import cpu"))
        assert not any("paddle" in l for l in imports[:first_local]), script
