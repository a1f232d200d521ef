"""The documentation site: its generated blocks, its strict offline build, its pages in a headless browser, and the
three worked examples it includes, each run as a user would run it."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from support import ROOT, zoo_env

sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402  (benchmarks/report.py: the renderer of README and docs blocks)

DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `make test` installs it
HAS_MKDOCS = all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers"))
NEEDS_MKDOCS = pytest.mark.skipif(not HAS_MKDOCS, reason="mkdocs, mkdocs-material or mkdocstrings-python is not "
                                  "installed (the `docs` extra: pip install -e '.[docs]'; `make test` installs it)")


def blocks(text: str) -> dict[tuple[str, str], str]:
    """``{(kind, name): body}`` of every generated block in a page."""
    return {(m.group(1), m.group(2)): m.group(0) for m in report.BLOCK.finditer(text)}


def docs_blocks() -> dict[tuple[str, str], list[tuple[Path, str]]]:
    out: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        for key, body in blocks(page.read_text()).items():
            out.setdefault(key, []).append((page, body))
    return out


# -- generated blocks ---------------------------------------------------------------------------------------------

def test_every_results_file_has_a_docs_block_and_readme_blocks_match_the_docs():
    readme = blocks((ROOT / "README.md").read_text())
    in_docs = docs_blocks()
    for results in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert ("results", results.stem) in in_docs, f"no docs page has the block <!-- results:{results.stem} -->"
    for key, body in readme.items():  # the README's registry table reads as the docs' table of the same name
        assert key in in_docs, f"README.md has <!-- {key[0]}:{key[1]} --> but no docs page has it"
        assert all(b == body for _, b in in_docs[key]), f"README.md and the docs render {key[0]}:{key[1]} differently"


#: The README's set-up commands, which the install tests and `make` targets rely on, verbatim.
SETUP = ("make demo    # install, then train ProtoNet Conv-4 on the embedded Glyphs benchmark and test it on 1,000 "
         "fixed episodes\nmake test    # install with the test extras (and Debian's wordnet-base), then run the test "
         "suite\n")
def test_the_readme_is_the_front_page():
    """Issue 24 item 5: what it is, the two set-up commands, the systems table linking each system's docs page, the
    registry table and where the docs are, under ~250 lines; results, prose and diagnostics live on the docs pages."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250, len(text.splitlines())
    assert f"```bash\n{SETUP}```" in text
    assert ("registry", "all") in blocks(text)
    assert not [k for k in blocks(text) if k[0] == "results"], "results blocks belong on the systems' docs pages"
    links = set(re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text))
    systems = {f"docs/systems/{p.name}" for p in (DOCS / "systems").glob("*.md") if p.name != "index.md"}
    assert systems <= links, sorted(systems - links)
    assert {"docs/index.md", "docs/quickstart.md", "docs/usage.md", "docs/protocol.md"} <= links
    missing = [link for link in links if not urlparse(link).scheme and not (ROOT / link).exists()]
    assert missing == []


def test_docs_blocks_are_what_the_files_render():
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        assert report.fill(text) == text, f"{page.relative_to(ROOT)} is stale: run python benchmarks/report.py"


def test_report_check_names_a_stale_page(tmp_path, monkeypatch, capsys):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text("<!-- results:throughput -->\nmade up 99.9\n<!-- /results:throughput -->\n")
    readme = tmp_path / "README.md"
    readme.write_text("no blocks\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "DOCS", tmp_path / "docs")
    assert report.main(["--check"]) == 1
    assert "docs/page.md" in capsys.readouterr().err and "made up" in page.read_text()  # --check writes nothing
    assert report.main([]) == 0
    assert "made up" not in page.read_text() and "episodes/s" in page.read_text()
    assert report.main(["--check"]) == 0


def test_registry_block_by_hand(tmp_path, monkeypatch):
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "a-net:\n  system: protonet\n  setting: 5-way | 1-shot\n  command: python make_a.py\n"
        "  metrics: {test_acc: 0.9659, test_ci95: 0.0031, test_episodes: 1000}\n"
        "b-nap:\n  system: nap\n  setting: pool\n  command: python make_b.py\n"
        "  metrics: {test/regret@10: 0.1, test/regret@10_ci95: 0.02, test/regret@50: 0.015, "
        "test/regret@50_ci95: 0.009, test_runs: 25}\n")
    monkeypatch.setattr(report, "REGISTRY", registry)
    assert report.registry("protonet") == (
        "| name | system | setting | test result (95% CI) | produced by |\n|---|---|---|---|---|\n"
        "| `a-net` | protonet | 5-way / 1-shot | 96.59 ± 0.31 % (1,000 episodes) | `python make_a.py` |\n\n"
        "From `checkpoints/registry.yaml`; test one with `zoo test --pretrained a-net`.")
    assert "| `b-nap` | nap | pool | regret @10 0.1000 ± 0.0200, @50 0.0150 ± 0.0090 (25 runs) |" in report.registry("nap")
    assert report.registry("all").count("\n| `") == 2
    assert report.registry("maml") == "*No checkpoint of system `maml` in `checkpoints/registry.yaml` yet.*"


def test_configs_block_by_hand(tmp_path, monkeypatch):
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "b.yaml").write_text("# B on CUB (Chen et al. 2019), cropped. More text.\nmodel: {}\n")
    (tmp_path / "sys" / "a.yaml").write_text("# A on root/<domain>/x.jpg: " + "long " * 30 + "end.\n# more\nx: 1\n")
    monkeypatch.setattr(report, "CONFIGS", tmp_path)
    assert report.configs("sys") == (
        "| `--config` name | file | what it is |\n|---|---|---|\n"
        "| `sys/a` | `configs/sys/a.yaml` | A on root/&lt;domain&gt;/x.jpg |\n"
        "| `sys/b` | `configs/sys/b.yaml` | B on CUB (Chen et al. 2019), cropped. |")
    assert report.configs("none") == "*No config under `configs/none/`.*"


def test_every_config_and_file_the_docs_name_exists():
    for page in sorted(DOCS.rglob("*.md")):
        for path in re.findall(r"`((?:configs|benchmarks|datamodules|zoo|callbacks|safefiles|docs)/[\w/.-]+\.(?:yaml|py|sh))`",
                               page.read_text()):
            assert (ROOT / path).is_file(), f"{page.relative_to(ROOT)} names {path}, which does not exist"
        for name in re.findall(r"--config ([a-z_]+/[\w-]+)(?![\w/.<-])", page.read_text()):
            assert (ROOT / "configs" / f"{name}.yaml").is_file(), f"{page.relative_to(ROOT)}: no shipped config {name}"


# -- the site -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with warnings as errors (broken links, anchors and docstrings included)."""
    if not HAS_MKDOCS:
        pytest.skip("mkdocs, mkdocs-material or mkdocstrings-python is not installed (the `docs` extra)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@NEEDS_MKDOCS
def test_site_builds_strict_and_fetches_nothing_from_outside(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 20
    for page in pages:
        html = page.read_text()
        for tag in re.findall(r"<(?:link|script|img|iframe)\b[^>]*>", html):
            assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", tag), f"{page.relative_to(site)}: {tag}"
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    api = (site / "api" / "zoo" / "index.html").read_text()
    for name in ("zoo.methods.protonet.ProtoNet", "zoo.methods.maml.MAML", "zoo.methods.bo.AskTell", "zoo.hub.pretrained.load_pretrained"):
        assert f'id="{name}"' in api, f"the API reference has no entry for {name}"
    assert 'id="datamodules.images.image_folder.ImageFolderDataModule"' in (site / "api" / "datamodules" / "index.html").read_text()
    example = (site / "examples" / "bo-ask-tell" / "index.html").read_text()
    assert "NAPSuggester" in example and "--8&lt;--" not in example  # the file itself is included, not the marker


@pytest.fixture(scope="module")
def served(site):
    """The built site over HTTP on the loopback interface (search runs in a web worker, which file:// forbids)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@NEEDS_MKDOCS
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make test` installs it)")
def test_every_page_opens_without_errors_and_is_reachable_from_the_navigation(site, served):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    built = {"/" if p.parent == site else f"/{p.parent.relative_to(site).as_posix()}/" for p in site.rglob("index.html")}
    errors: list[str] = []
    seen: set[str] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"{page.url}: failed to load {r.url}"))
        queue = [served]
        while queue:
            url = queue.pop()
            path = urlparse(url).path
            if path in seen:
                continue
            seen.add(path)
            response = page.goto(url)
            assert response is not None and response.ok, f"{url}: {response.status if response else 'no response'}"
            assert page.title(), url
            links = page.eval_on_selector_all("nav.md-nav--primary a.md-nav__link[href]", "as => as.map(a => a.href)")
            queue += [link.split("#")[0] for link in links if link.startswith(served)]
        page.goto(served)  # search runs in its worker on the served index
        page.fill("input.md-search__input", "ProtoNet")
        page.wait_for_selector(".md-search-result__item", timeout=60_000)  # the worker indexes first
        browser.close()
    assert errors == []
    assert seen == built, f"not reachable from the navigation: {sorted(built - seen)}"


# -- worked examples ----------------------------------------------------------------------------------------------

def run_example(args: list[str], tmp_path: Path, timeout: int = 240) -> str:
    """Run an example as a user would, with this checkout's `zoo` first on PATH (a shim calling this interpreter)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "zoo"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m zoo "$@"\n')
    shim.chmod(0o755)
    env = zoo_env(tmp_path)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_example_pretrained_inference_classifies_every_query(tmp_path):
    out = run_example([sys.executable, str(EXAMPLES / "pretrained_inference.py"), str(tmp_path / "images")], tmp_path)
    assert "accuracy: 15/15 queries (100%)" in out, out
    assert len(list((tmp_path / "images" / "support").iterdir())) == 5


def test_example_train_and_compare_pairs_the_two_runs(glyphs_data, tmp_path):
    out = run_example(["bash", str(EXAMPLES / "train_and_compare.sh"), str(tmp_path / "runs")], tmp_path, timeout=400)
    assert re.search(r"A - B = [+-]\d+\.\d\d \+- \d+\.\d\d points \(paired, 95% CI, 50 shared test episodes\)", out), out
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"protonet", "anil"}


def test_example_bo_ask_tell_beats_random_search_on_its_pool(tmp_path):
    out = run_example([sys.executable, str(EXAMPLES / "bo_ask_tell.py")], tmp_path)
    nap, rand, pool = (float(x) for x in re.findall(r"best (?:f|point in the pool: f) = (-?\d+\.\d+)", out))
    assert pool <= nap < rand, out  # minimising: NAP's best is at least the pool's best, and better than random


def test_the_api_reference_documents_every_public_name():
    """Each name in the ``__all__`` of zoo, callbacks, datamodules and its modality packages has an entry
    (``::: module.Name``) on its API page. ``zoo`` and ``datamodules`` load their names lazily, so importing the
    packages to read ``__all__`` loads nothing heavy."""
    import importlib

    packages = {"zoo": "zoo", "callbacks": "callbacks", "datamodules": "datamodules",
                **{f"datamodules.{p.name}": "datamodules" for p in (ROOT / "datamodules").iterdir()
                   if (p / "__init__.py").is_file()}}
    for package, page in packages.items():
        names = importlib.import_module(package).__all__
        documented = set(re.findall(r"^::: [\w.]+\.(\w+)$", (DOCS / "api" / f"{page}.md").read_text(), re.M))
        missing = sorted(set(names) - documented)
        assert not missing, f"docs/api/{page}.md has no entry for {package}.{missing}"
