"""The README's method table names real code and real tests, and its GLUE table is what the committed
result files generate (so neither can drift from the code or from results/)."""

import os
import re

from tools import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def test_method_table_names_functions_and_tests_that_exist():
    code, tests = read("transkimmer.py"), read("tests/test_transkimmer.py")
    rows = [line.split("|") for line in read("README.md").splitlines()
            if line.startswith("| ") and line.split("|")[1].strip()[:1].isdigit()]
    assert {r[1].strip() for r in rows} == {"1", "2", "3", "4", "5", "6", "7", "8, 9"}   # every equation
    for row in rows:
        for name in re.findall(r"`(\w+)`", row[3]):
            assert re.search(rf"^(def|class) {name}\b", code, re.M), f"README names transkimmer.{name}, which does not exist"
        names = re.findall(r"`(\w+)`", row[4])
        assert names, row
        for name in names:
            assert re.search(rf"^def {name}\b", tests, re.M), f"README names the test {name}, which does not exist"


def test_readme_glue_table_is_what_results_generate():
    block = re.search(r"<!-- glue-table -->\n(.*?)<!-- /glue-table -->", read("README.md"), re.S).group(1)
    assert block == tables.glue_table(os.path.join(ROOT, "results", "glue"))


def test_readme_installs_the_cpu_torch_before_the_requirements():
    """Read top to bottom, the install block must not pull torch's CUDA build first: the CPU build's line
    comes before `pip install -r requirements.txt`, in the same block."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("## Install", 1)[1].split("```bash", 1)[1].split("```", 1)[0].splitlines()
    cpu = next(i for i, line in enumerate(block) if "download.pytorch.org/whl/cpu" in line)
    assert cpu < next(i for i, line in enumerate(block) if "pip install -r requirements.txt" in line)


FOLDERS = ("tests/", "tools/", "docs/", "fast/", "cli/", "tasks/", "extensions/", "families/", "peers/", "predict/",
           "results/", "assets/")
PATH = re.compile(r"(?<![\w./-])((?:%s)[\w./-]*\w)" % "|".join(map(re.escape, FOLDERS)))


def named_paths(text):
    """The project paths a text names (a file under one of FOLDERS), less the patterns: a placeholder in
    capitals (T for a task, S for a seed), an elision (...), a glob, a module's attribute (hooks.Recorder)."""
    for m in PATH.finditer(text):
        path = m.group(1).rstrip(".")
        if "..." in path or any(c.isupper() for c in path) or text[m.end():m.end() + 1] in "*{<":
            continue
        yield path


def test_every_path_the_code_and_docs_name_exists():
    """A file renamed or removed must not live on in a comment or a page (the CUDA-graph tests' old name did):
    every project path a .py or .md file names exists, or begins the name of one that does (a prefix and "-...")."""
    import subprocess
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    everything = [os.path.join(d, f) for d, ds, fs in os.walk(ROOT) for f in fs + ds]
    names = {os.path.relpath(p, ROOT) for p in everything}
    stale = []
    for f in files:
        if f.endswith((".py", ".md")):
            for path in named_paths(read(f)):
                module = path.rsplit(".", 1)[0] + ".py"   # (extensions/hooks.Recorder: the module's name)
                if path not in names and module not in names and not any(n.startswith(path) for n in names):
                    stale.append(f"{f}: {path}")
    assert not stale, stale


CORE = ("transkimmer", "model", "data", "load_weights", "flops", "evaluate")


def test_the_core_imports_only_the_core_and_families():
    """The library modules import each other, families/ (the backbones' adapters), the standard library
    and the dependencies; never cli/, tasks/, extensions/, fast/ or any other of the project's folders,
    where the commands live and import the core (train.py wires them together)."""
    import ast
    folders = {d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d)) and not d.startswith(".")}
    for name in CORE:
        tree = ast.parse(open(os.path.join(ROOT, name + ".py")).read())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for imported in names:
                top = imported.split(".")[0]
                assert top not in folders - {"families"}, f"{name}.py imports {imported} (line {node.lineno})"
