"""The user docs stay true: cli.md matches `--help`, links resolve, quickstart commands exist."""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from kronos_synth.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Pages other engineers own; linked from the index before they land.
OWNED_ELSEWHERE = {"models.md", "baselines.md", "performance.md", "scale-out.md"}


def _reference_module():
    spec = importlib.util.spec_from_file_location("make_cli_reference", DOCS / "make_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    text = _reference_module().render()
    assert (DOCS / "cli.md").read_text() == text, "docs/cli.md is stale: run python docs/make_cli_reference.py"


@pytest.mark.parametrize("args", [["augment"], ["generate"], ["evaluate", "tstr"], ["datasets", "list"]])
def test_cli_reference_is_the_real_help_output(args):
    helptext = CliRunner().invoke(cli, [*args, "--help"], prog_name="kronos-synth", terminal_width=100).output
    section = (DOCS / "cli.md").read_text().split(f"\n## kronos-synth {' '.join(args)}\n\n```text\n", 1)[1]
    assert section.split("\n```\n", 1)[0] == helptext.rstrip()


def test_every_command_is_documented_with_an_example():
    md = (DOCS / "cli.md").read_text()
    for name in ("augment", "generate", "evaluate all", "baseline fit", "train model", "datasets check"):
        assert f"## kronos-synth {name}\n" in md
    sections = md.split("\n## ")[2:]
    assert all("Example" in s for s in sections), [s.splitlines()[0] for s in sections if "Example" not in s]


def _links(path: Path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if not re.match(r"[a-z]+://", target):
            yield target


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")) + ["../recipes/README.md"])
def test_relative_links_resolve(page):
    path = (DOCS / page).resolve()
    for target in _links(path):
        dest = (path.parent / target).resolve()
        if dest.name in OWNED_ELSEWHERE and dest.parent == DOCS:
            continue
        assert dest.exists(), f"{page} links to missing {target}"


def test_index_links_every_page():
    index = (DOCS / "index.md").read_text()
    for name in ["quickstart.md", "cli.md", "schema.md", "protocol.md", "faq.md", "augmentation.md",
                 *OWNED_ELSEWHERE]:
        assert f"({name})" in index


def test_quickstart_commands_parse():
    """Every `kronos-synth …` line of the quickstart is a command with options the CLI accepts."""
    text = (DOCS / "quickstart.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    commands = [c for c in commands if c.startswith("kronos-synth ")]
    assert len(commands) >= 4
    for c in commands:
        args = shlex.split(c)[1:]
        ctx = cli.make_context("kronos-synth", list(args), resilient_parsing=True)
        sub = args[0]
        if sub.startswith("--"):
            continue
        cmd = cli.get_command(ctx, sub)
        assert cmd is not None, c
        rest = args[1:]
        while hasattr(cmd, "get_command") and rest and not rest[0].startswith("-"):
            cmd, rest = cmd.get_command(ctx, rest[0]), rest[1:]
            assert cmd is not None, c
        known = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for a in rest:
            if a.startswith("--"):
                assert a.split("=")[0] in known, f"{c}: unknown option {a}"
