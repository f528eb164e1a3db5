"""The commands, Make targets and links written in README.md and docs/ exist.

For every Markdown page (README.md, docs/**/*.md), in fenced code blocks and inline code:

* ``main.py --mode=X --flag ...``: X is one of ``main.MODES``; every ``--flag`` (or ``--noflag`` for a
  boolean) is one of main.py's absl flags; ``--config=configs/ifan.py:VARIANTS`` names the file and
  known variants; every ``--config.a.b=...`` override comes with ``--config=...`` (absl refuses it
  otherwise) and names a field of ``configs.ifan.get_config(VARIANTS)``.
* ``python -m X --flag ...`` (and the console scripts of pyproject.toml): X is importable
  (``importlib.util.find_spec``, not run) and runnable as a script, and defines every ``--flag``:
  absl modules are asked for ``--helpfull``, argparse modules for ``--help`` (``python -m X SUB
  --help`` for a sub-command), in a subprocess, once per module. An argparse module that hands the
  flags it does not know to Apache Beam (``parse_known_args``) also accepts Beam's pipeline
  options. Modules of other projects (``python -m pip``, ``python -m build``) are not checked.
* ``make TARGET``: TARGET is a rule of the Makefile.
* ``[text](relative/path#anchor)``: the file exists, and the anchor is one of its headings.

main.py's flags are read in a subprocess too: importing ``main`` defines flags (``--output``,
``--overwrite``) that other modules imported by other tests in this process define as well.
"""
import concurrent.futures
import functools
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
HELP_TIMEOUT_S = 120

FENCE = re.compile(r"^(\s*)(```|~~~)(.*)$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
PYTHON = r"(?:[\w./-]*python[\d.]*)"
MAIN_COMMAND = re.compile(r"(?<![\w/.-])(?:" + PYTHON + r"\s+)?main\.py(?![\w.])")
MODULE_COMMAND = re.compile(PYTHON + r"\s+-m\s+([A-Za-z_][\w.]*)")
MAKE_COMMAND = re.compile(r"(?<![\w./-])make\s+([A-Za-z_][\w.-]*)")
FLAG = re.compile(r"(?<![\w-])--([A-Za-z_][\w.-]*)(?:=(\S*))?")
SEGMENT_END = re.compile(r"\s(?:&&|\|\||;|\||>|#)\s|\s#|;\s")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


# ---------------------------------------------------------------- reading the Markdown


def code_snippets(text):
    """(line number, command text) of every code line (continuations joined) and inline code span."""
    snippets, lines, fence, prose = [], text.splitlines(), None, []
    pending, pending_line = "", 0
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
                if pending:
                    snippets.append((pending_line, pending))
                pending = ""
                continue
            if not pending:
                pending_line = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            snippets.append((pending_line, pending + line))
            pending = ""
            continue
        prose.append((number, line))
    # inline code: search paragraph by paragraph (a span may wrap onto the next line)
    paragraph, start = [], 0
    for number, line in prose + [(len(lines) + 1, "")]:
        if line.strip():
            if not paragraph:
                start = number
            paragraph.append(line)
            continue
        joined = "\n".join(paragraph)
        for match in INLINE_CODE.finditer(joined):
            snippets.append((start + joined.count("\n", 0, match.start()), match.group(2).replace("\n", " ")))
        paragraph = []
    return snippets


def strip_comment(snippet):
    """A shell line without its ``# comment`` (a ``#`` at the start or after a blank)."""
    if snippet.lstrip().startswith("#"):
        return ""
    match = re.search(r"\s#", snippet)
    return snippet[:match.start()] if match else snippet


def command_words(snippet, start):
    """The text of one command from ``start`` up to the end of its segment (``&&``, ``;``, pipe, comment)."""
    rest = snippet[start:]
    end = SEGMENT_END.search(rest)
    return rest[:end.start()] if end else rest


def flags_of(words):
    """(name, value or None) of every ``--flag`` in ``words`` (optional ``[...]`` brackets ignored)."""
    return [(match.group(1).rstrip(".,;:)]"), None if match.group(2) is None else match.group(2).rstrip(")],;"))
            for match in FLAG.finditer(words)]


def first_word(words):
    """The first argument of a command if it is a bare word (a possible sub-command), else None."""
    match = re.match(r"\s*([a-z][\w-]*)(?=\s|$)", words)
    return match.group(1) if match else None


def commands(text):
    """Every command written in ``text``: dicts with kind (main / module / make), line, name, flags."""
    found = []
    for line, snippet in code_snippets(text):
        snippet = strip_comment(snippet)
        for match in MAIN_COMMAND.finditer(snippet):
            words = command_words(snippet, match.end())
            if not flags_of(words):  # the file named in prose, not a command
                continue
            found.append(dict(kind="main", line=line, name="main.py", flags=flags_of(words), text=snippet.strip()))
        for match in MODULE_COMMAND.finditer(snippet):
            words = command_words(snippet, match.end())
            found.append(dict(kind="module", line=line, name=match.group(1), flags=flags_of(words),
                              word=first_word(words), text=snippet.strip()))
        for script, module in console_scripts().items():
            for match in re.finditer(r"(?<![\w./-])" + re.escape(script) + r"(?![\w-])", snippet):
                words = command_words(snippet, match.end())
                found.append(dict(kind="module", line=line, name=module, flags=flags_of(words),
                                  word=first_word(words), text=snippet.strip()))
        for match in MAKE_COMMAND.finditer(snippet):
            found.append(dict(kind="make", line=line, name=match.group(1), flags=[], text=snippet.strip()))
    return found


@functools.cache
def console_scripts():
    """pyproject.toml's console scripts: name -> module."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
    return {name: target.split(":")[0] for name, target in scripts.items()}


@functools.cache
def project_modules():
    """Top-level names of the repository's own modules and packages (others' modules are not checked)."""
    names = {path.stem for path in REPO_ROOT.glob("*.py")}
    names |= {path.name for path in REPO_ROOT.iterdir()
              if path.is_dir() and not path.name.startswith(".") and any(path.glob("*.py"))}
    return names


@functools.cache
def make_targets():
    """The rules of the Makefile."""
    rules = re.findall(r"^([A-Za-z_][\w.-]*)\s*:(?!=)", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    return set(rules)


# ---------------------------------------------------------------- what the programs define


class Programs:
    """The flags main.py and the ``python -m`` modules define, each asked once (subprocesses)."""

    def __init__(self):
        self._main = None
        self._modules = {}
        self._beam = None

    @staticmethod
    def _run(args):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=HELP_TIMEOUT_S)

    def main(self):
        """{"modes": [...], "flags": {name: is_boolean}} of main.py."""
        if self._main is None:
            script = ("import json, main\nfrom absl import flags\n"
                      "print(json.dumps({'modes': list(main.MODES), "
                      "'flags': {name: flags.FLAGS[name].boolean for name in flags.FLAGS}}))")
            result = self._run(["-c", script])
            assert result.returncode == 0, result.stderr[-3000:]
            self._main = json.loads(result.stdout.strip().splitlines()[-1])
        return self._main

    def module(self, name, word=None):
        """(problem or None, {flag: is_boolean}) of ``python -m name [word]``.

        ``word`` is the command's first bare argument: when the module's help lists it as a
        sub-command (``{synthesize,convert}``), the flags are those of ``python -m name word --help``.
        """
        if name not in self._modules:
            self._modules[name] = self._ask(name)
        problem, defined = self._modules[name][:2]
        if problem or word is None or word not in self._modules[name][2]:
            return problem, defined
        if (name, word) not in self._modules:
            self._modules[name, word] = self._ask(name, word)
        return self._modules[name, word][:2]

    def prefetch(self, keys):
        """Asks several modules ``(name, word)`` at once (two at a time: the machine may have two cores)."""
        names = sorted({name for name, _ in keys} - set(self._modules))
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for name, answer in zip(names, pool.map(self._ask, names)):
                self._modules[name] = answer
            subs = sorted({(name, word) for name, word in keys
                           if word in self._modules[name][2] and (name, word) not in self._modules})
            for key, answer in zip(subs, pool.map(lambda key: self._ask(*key), subs)):
                self._modules[key] = answer

    def beam_flags(self):
        """The flags of Apache Beam's PipelineOptions (those of every registered runner included)."""
        if self._beam is None:
            script = ("import argparse, json\n"
                      "from apache_beam.options import pipeline_options\n"
                      "import apache_beam.runners.portability.flink_runner, apache_beam.runners.portability.spark_runner\n"
                      "def walk(cls):\n"
                      "    for sub in cls.__subclasses__():\n"
                      "        yield sub\n"
                      "        yield from walk(sub)\n"
                      "parser = argparse.ArgumentParser(add_help=False, conflict_handler='resolve')\n"
                      "for cls in set(walk(pipeline_options.PipelineOptions)):\n"
                      "    cls._add_argparse_args(parser)\n"
                      "print(json.dumps(sorted(o[2:] for o in parser._option_string_actions if o.startswith('--'))))")
            result = self._run(["-c", script])
            assert result.returncode == 0, result.stderr[-3000:]
            self._beam = {flag: False for flag in json.loads(result.stdout.strip().splitlines()[-1])}
        return self._beam

    def _ask(self, name, word=None):
        """(problem or None, {flag: is_boolean}, sub-commands) of ``python -m name [word]``."""
        answer = self._ask_flags(name, word)
        return answer if len(answer) == 3 else (*answer, set())

    def _ask_flags(self, name, word=None):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as error:
            return f"python -m {name}: not importable ({error})", {}
        if spec is None or spec.origin is None:
            return f"python -m {name}: no such module", {}
        origin = pathlib.Path(spec.origin)
        if spec.submodule_search_locations is not None:  # a package runs its __main__.py
            origin = origin.with_name("__main__.py")
            if not origin.exists():
                return f"python -m {name}: a package without __main__.py", {}
        source = origin.read_text()
        if "__main__" not in source and not name.endswith("__main__"):
            return f"python -m {name}: the module has no command line (no __main__ block)", {}
        uses_argparse = "argparse" in source and "absl" not in source
        try:
            result = self._run(["-m", name, *([word] if word else []), "--help" if uses_argparse else "--helpfull"])
        except subprocess.TimeoutExpired:
            return f"python -m {name} --help did not finish within {HELP_TIMEOUT_S} s", {}
        text = result.stdout + result.stderr
        subcommands = set()
        if uses_argparse:
            defined = {flag: False for flag in re.findall(r"(?<![\w-])--([A-Za-z][\w-]*)", result.stdout)}
            usage = result.stdout.split("\n\n")[0]
            for choices in re.findall(r"\{([\w,-]+)\}", usage):
                subcommands |= set(choices.split(","))
            if "parse_known_args" in source and "beam" in (source + result.stdout).lower():
                defined = {**self.beam_flags(), **defined}  # the flags it does not know go to Beam
        else:
            defined = {}
            for negatable, flag in re.findall(r"^\s+(?:-\S+,)?--(\[no\])?([\w.-]+):", text, re.MULTILINE):
                defined[flag] = bool(negatable)
        if not defined:
            return f"python -m {name} --help printed no flags (exit {result.returncode}): {text[-1500:]}", {}
        return None, defined, subcommands


@pytest.fixture(scope="module")
def programs():
    programs = Programs()
    keys = [(command["name"], command["word"]) for doc in DOCS for command in commands(doc.read_text())
            if command["kind"] == "module" and command["name"].split(".")[0] in project_modules()]
    programs.prefetch(keys + [("ifan_tf.weights.convert", None)])  # the crafted documents below name it too
    return programs


# ---------------------------------------------------------------- the checks


def _config_fields(config, prefix=""):
    fields = set()
    for key, value in config.items():
        fields.add(prefix + key)
        if hasattr(value, "items"):
            fields |= _config_fields(value, prefix + key + ".")
    return fields


def _main_problems(command, main):
    from configs import ifan as ifan_configs

    problems, defined = [], main["flags"]
    given = dict(command["flags"])
    mode = given.get("mode")
    if mode is None:
        problems.append("no --mode=X")
    elif mode not in main["modes"]:
        problems.append(f"--mode={mode} is not one of {', '.join(main['modes'])}")
    variant = ""
    config_value = given.get("config")
    if config_value:
        path, _, variant = config_value.strip("'\"").partition(":")
        if not (REPO_ROOT / path).is_file():
            problems.append(f"--config={config_value}: no file {path}")
    try:
        fields = _config_fields(ifan_configs.get_config(variant))
    except ValueError as error:
        problems.append(f"--config={config_value}: {error}")
        fields = set()
    for flag, _ in command["flags"]:
        if flag.startswith("config.") and not config_value:
            problems.append(f"--{flag}: overrides need --config=configs/ifan.py[:VARIANTS] in the same command")
        elif flag.startswith("config."):
            if fields and flag[len("config."):] not in fields:
                problems.append(f"--{flag}: no field {flag[len('config.'):]} in configs/ifan.py:{variant}")
        elif flag not in defined and not (flag.startswith("no") and defined.get(flag[2:])):
            problems.append(f"--{flag} is not a flag of main.py")
    return problems


def _module_problems(command, programs):
    if command["name"].split(".")[0] not in project_modules():
        return []  # another project's command line (python -m pip, python -m build, ...)
    problem, defined = programs.module(command["name"], command["word"])
    if problem:
        return [problem]
    return [f"--{flag} is not a flag of python -m {command['name']}" for flag, _ in command["flags"]
            if flag not in defined and not (flag.startswith("no") and defined.get(flag[2:]))]


def command_problems(text, programs, where="doc"):
    """Problems with the commands written in ``text`` (one string each, naming the line)."""
    problems, targets = [], make_targets()
    for command in commands(text):
        if command["kind"] == "main":
            found = _main_problems(command, programs.main())
        elif command["kind"] == "module":
            found = _module_problems(command, programs)
        else:
            found = [] if command["name"] in targets else [f"make {command['name']}: no such Makefile target"]
        problems += [f"{where}:{command['line']}: {problem}  [{command['text'][:160]}]" for problem in found]
    return problems


def heading_anchors(text):
    """GitHub's anchors of the headings of a Markdown text."""
    anchors, seen, fence = set(), {}, False
    for line in text.splitlines():
        if FENCE.match(line):
            fence = not fence
            continue
        match = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))
            slug = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def link_problems(path, text=None, where=None):
    """Relative links and images of a Markdown file whose file or heading anchor does not exist."""
    path = pathlib.Path(path)
    text = path.read_text() if text is None else text
    where = where or path.name
    problems = []
    # links inside code are not links
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    prose = INLINE_CODE.sub("", prose)
    for match in [*LINK.finditer(prose), *IMAGE.finditer(prose)]:
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{where}: link to {target}: no such file {linked}")
            continue
        if anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            problems.append(f"{where}: link to {target}: {linked.name} has no heading with anchor #{anchor}")
    return problems


# ---------------------------------------------------------------- the tests


def _doc_id(path):
    return str(path.relative_to(REPO_ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_commands_in_docs_exist(doc, programs):
    problems = command_problems(doc.read_text(), programs, where=_doc_id(doc))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_links_in_docs_resolve(doc):
    problems = link_problems(doc, where=_doc_id(doc))
    assert not problems, "\n".join(problems)


def test_the_docs_name_commands():
    """The checker finds the README's commands (a reader that finds nothing would check nothing)."""
    found = commands((REPO_ROOT / "README.md").read_text())
    kinds = {(command["kind"], command["name"]) for command in found}
    assert ("main", "main.py") in kinds and ("make", "demo") in kinds and ("make", "test") in kinds
    assert ("module", "ifan_tf.weights.convert") in kinds
    modes = {dict(command["flags"]).get("mode") for command in found if command["kind"] == "main"}
    assert {"predict", "train", "eval"} <= modes


def test_checker_reports_a_flag_that_does_not_exist(tmp_path, programs):
    """A copy of the README with bogus flags added fails, naming each of them; the copy without them passes."""
    readme = (REPO_ROOT / "README.md").read_text()
    copy = tmp_path / "README.md"
    copy.write_text(readme)
    assert command_problems(copy.read_text(), programs) == []
    copy.write_text(readme + "\n```bash\n"
                    "python main.py --mode=predict --model_dir=m --input=a.png --output=b.png --no_such_flag\n"
                    "python -m ifan_tf.weights.convert --checkpoint=IFAN.pytorch --no_such_flag=3\n"
                    "python main.py --mode=train --config=configs/ifan.py:demo --config.train.no_such_field=1\n"
                    "python main.py --mode=no_such_mode --noprecision\n"
                    "python main.py --mode=demo --config.train.max_minutes=5\n"
                    "python -m ifan_tf.no_such_module --output=x\n"
                    "make no_such_target\n"
                    "```\n"
                    "and inline: `main.py --mode=eval --also_no_such_flag`.\n")
    problems = "\n".join(command_problems(copy.read_text(), programs))
    for expected in ("--no_such_flag is not a flag of main.py",
                     "--no_such_flag is not a flag of python -m ifan_tf.weights.convert",
                     "--config.train.no_such_field: no field train.no_such_field",
                     "--mode=no_such_mode is not one of",
                     "--noprecision is not a flag of main.py",  # --precision is not a boolean
                     "python -m ifan_tf.no_such_module: no such module",
                     "make no_such_target: no such Makefile target",
                     "--also_no_such_flag is not a flag of main.py",
                     "--config.train.max_minutes: overrides need --config="):
        assert expected in problems, problems
    assert len(problems.splitlines()) == 9, problems


def test_checker_accepts_negations_overrides_and_console_scripts(programs):
    text = ("```bash\n"
            "python main.py --mode=export --model_dir=m --export_dir=e \\\n    --nowarmup_requests  # --not_checked\n"
            "python main.py --mode=demo --workdir=runs/demo --config=configs/ifan.py:demo --config.demo.noise_level=0.01\n"
            "python -m data_prep.synthesize --output_dir=d --nodisjoint_photos --splits=train:3\n"
            "ifan-convert-dpdd --input_dir=D --output_dir=O --skip_bad_images\n"
            "```\n")
    assert command_problems(text, programs) == []
    assert [command["name"] for command in commands(text)] == [
        "main.py", "main.py", "data_prep.synthesize", "data_prep.dpdd"]


def test_checker_reads_sub_commands_and_beam_options(programs):
    if importlib.util.find_spec("ifan_tf.pipelines.training_data") is None:
        pytest.skip("no Beam pipelines (ifan_tf.pipelines.training_data) in this tree")
    text = ("```bash\n"
            "python -m ifan_tf.pipelines.training_data convert --layout=dpdd --input_dir=D --output_dir=O \\\n"
            "    --runner=DataflowRunner --project=P --direct_num_workers=2\n"
            "python -m ifan_tf.pipelines.training_data convert --input_dir=D --no_such_flag\n"
            "```\n")
    problems = command_problems(text, programs)
    assert len(problems) == 1 and "--no_such_flag is not a flag" in problems[0], problems


def test_checker_reports_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Large images: tiling and memory\n")
    doc = tmp_path / "README.md"
    doc.write_text("[ok](docs/page.md) [ok too](docs/page.md#large-images-tiling-and-memory) [web](https://x.org)\n"
                   "[gone](docs/missing.md) [bad anchor](docs/page.md#no-such-heading) `[code](not/a/link.md)`\n")
    problems = link_problems(doc)
    assert len(problems) == 2, problems
    assert "docs/missing.md" in problems[0] and "#no-such-heading" in problems[1]
