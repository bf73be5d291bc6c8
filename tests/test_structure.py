"""The layout promises: entry points are never imported by library code, no two modules import
each other (directly or round a cycle), a student is rebuilt from a checkpoint in one place,
the teacher logits' cache folder is named in one place, file-only scripts start without
Paddle, and a log line prints once on a terminal."""
from __future__ import annotations

import ast
import glob
import io
import logging
import os
import subprocess
import sys

from conftest import ROOT

ENTRY_POINTS = {"small", "teacher", "bert_distill", "export", "predict", "pipeline", "report",
                "convert"}


def sources(*patterns: str) -> dict[str, str]:
    return {p: open(p, encoding="utf-8").read()
            for pattern in patterns for p in sorted(glob.glob(os.path.join(ROOT, pattern)))}


def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_an_entry_point():
    offenders = {os.path.relpath(p, ROOT): sorted(imported_modules(s) & ENTRY_POINTS)
                 for p, s in sources("*.py", "bench/*.py").items()}
    assert not {p: m for p, m in offenders.items() if m}


def test_no_import_cycle():
    modules = {os.path.basename(p)[:-3]: s for p, s in sources("*.py").items()}
    graph = {m: imported_modules(s) & set(modules) - {m} for m, s in modules.items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for d in graph[todo.pop()] - seen:
                seen.add(d)
                todo.append(d)
        return seen

    assert not sorted(m for m in graph if m in reachable(m))


def test_a_student_is_rebuilt_from_a_checkpoint_in_one_place():
    places = [os.path.relpath(p, ROOT) for p, s in sources("*.py", "bench/*.py").items()
              for _ in range(s.count("StudentConfig(**"))]
    assert places == ["model_io.py"]


def test_the_logits_cache_folder_is_named_in_one_place():
    """Every teacher source's logits go through logits.logits_folder; the student module
    needs no teacher."""
    places = [os.path.relpath(p, ROOT) for p, s in sources("*.py", "bench/*.py").items()
              for _ in range(s.count('"logits-') + s.count("'logits-"))]
    assert places == ["logits.py"]
    assert "teachers" not in imported_modules(open(os.path.join(ROOT, "student.py")).read())


def test_file_only_scripts_do_not_import_paddle():
    code = "import sys, pipeline, report; assert 'paddle' not in sys.modules, 'paddle imported'"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_prints_once_above_the_progress_bar(monkeypatch):
    from trainer import Progress
    from utils import setup_logging

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    setup_logging()
    try:
        progress = Progress(total=10, start=0)
        assert progress.bar is not None  # a terminal gets a bar
        progress.update(0.5, 100.0)
        progress.write("dev acc 0.9000 (best)")
        progress.close()
    finally:
        logging.basicConfig(handlers=[logging.StreamHandler(sys.__stderr__)], force=True)
    assert term.getvalue().count("dev acc 0.9000 (best)") == 1
