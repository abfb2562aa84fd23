"""``evaltune suites list``, ``validate FILE``, ``show NAME``, ``copy NAME DEST``, ``schema [-o FILE]`` and
``memorisation SOURCE -o FILE``."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evaltune.errors import UserError, user_errors

if TYPE_CHECKING:
    from evaltune.harness.loaders.memorisation import ProbeText


@click.group()
def suites() -> None:
    """Built-in and user suites."""


@suites.command("list")
def list_suites() -> None:
    """The built-in suites, with their item counts and scorers."""
    from evaltune.harness.builtin import builtin_suites
    from evaltune.harness.loaders import load_suite

    for name, path in sorted(builtin_suites().items()):
        with user_errors():
            suite = load_suite(str(path))
        click.echo(f"{name:<14} {len(suite.items):>4} items  scorers: {', '.join(suite.scorers)}")
        if suite.description:
            click.echo(f"{'':<14} {suite.description.strip().splitlines()[0]}")


@suites.command("validate")
@click.argument("file")
def validate(file: str) -> None:
    """Check a suite file (or built-in name): items, fields, scorer names. Exit 2 with the first error."""
    from evaltune.harness.loaders import load_suite
    from evaltune.metrics.registry import get_scorer

    with user_errors():
        suite = load_suite(file)
        for name in suite.scorers:
            get_scorer(name)
    kinds = Counter(tag for item in suite.items for tag in item.tags[:1])
    mc = sum(item.is_multiple_choice for item in suite.items)
    click.echo(f"ok: {suite.name}, {len(suite.items)} items ({mc} multiple choice), version {suite.content_hash[:12]}")
    if kinds:
        click.echo("by first tag: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))


@suites.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print built-in suite NAME's file as it is (where it lives goes to stderr), to read or to start from."""
    from evaltune.harness.builtin import builtin_path
    from evaltune.harness.loaders.files import read_text
    from evaltune.harness.loaders.yaml_suite import suite_files

    with user_errors():
        path = builtin_path(name)
        extra = suite_files(path)[1:]
        text = read_text(path)
    beside = f"; it reads {', '.join(str(path.parent / f) for f in extra)}" if extra else ""
    click.echo(f"{name}: {path}{beside}; 'evaltune suites copy {name} DEST' makes a copy to edit", err=True)
    click.echo(text, nl=False)


@suites.command("copy")
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
def copy(name: str, dest: Path) -> None:
    """Copy built-in suite NAME, with the items file it reads, to DEST: a folder, or a file name ending in .yaml.

    Nothing is overwritten. The copy is the same suite version until its name, items or prompt settings change,
    so runs of the copy with other sampling settings compare item by item with runs of the built-in suite.
    """
    from evaltune.harness.builtin import builtin_path
    from evaltune.harness.loaders import SUITE_SUFFIXES
    from evaltune.harness.loaders.yaml_suite import suite_files

    with user_errors():
        source = builtin_path(name)
        files = suite_files(source)
    if dest.is_dir():
        target = dest / source.name
    elif dest.suffix.lower() in SUITE_SUFFIXES:
        target = dest
    else:
        raise UserError(f"DEST {dest}: not a folder and not a .yaml file name; give an existing folder or a "
                        f"path ending in .yaml (nothing was copied)")
    pairs = [(source, target)] + [(source.parent / f, target.parent / f) for f in files[1:]]
    taken = [str(to) for _, to in pairs if to.exists()]
    if taken:
        raise UserError(f"{', '.join(taken)} already exists; move it away or choose another DEST (nothing was copied)")
    written: list[Path] = []
    try:
        for from_path, to_path in pairs:
            to_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(from_path, to_path)
            written.append(to_path)
    except OSError as error:
        for path in written:  # half a suite (the file without its items) would fail to load later
            path.unlink(missing_ok=True)
        raise UserError(f"cannot write {error.filename or dest}: {error.strerror}; choose another DEST") from None
    copied = ", ".join(str(to) for _, to in pairs)
    click.echo(f"copied {name} to {copied}; run it with 'evaltune run {target}'")


@suites.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema to FILE instead of printing it.")
@click.option("--built-in-only", is_flag=True,
              help="Leave out what installed plugins add (scorers, formats): the copy shipped as "
                   "harness/suite.schema.json.")
def schema(output: Path | None, built_in_only: bool) -> None:
    """The JSON Schema (draft 2020-12) of suite files, for editors to complete and check suite YAML.

    It knows the scorers and formats of installed plugins too (the copy shipped in the package knows the built-in
    ones). Point an editor at the file: '# yaml-language-server: $schema=FILE' as a suite's first line.
    """
    from evaltune.harness.loaders.formats import loader_problems
    from evaltune.harness.suite_schema import schema_text, suite_schema
    from evaltune.metrics.registry import plugin_problems

    text = schema_text(suite_schema(built_in_only=built_in_only))
    if not built_in_only:
        for problem in [*plugin_problems(), *loader_problems()]:
            click.echo(f"warning: {problem} (not in the schema)", err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write the schema to {output}: {error.strerror}; choose another -o FILE") from None
    click.echo(f"wrote {output}; point an editor at it with '# yaml-language-server: $schema={output.resolve()}' "
               "as a suite's first line", err=True)


@suites.command("memorisation")
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The suite file to write (.yaml); it must not exist yet.")
@click.option("--prefix-words", type=int, default=32, show_default=True,
              help="K: the words of each text the model is prompted with.")
@click.option("--continuation-words", type=int, default=32, show_default=True,
              help="M: the words after them that the output is compared with.")
@click.option("--split", type=click.Choice(["train", "holdout", "all"]), default="train", show_default=True,
              help="With dataset:ID, the rows to probe (holdout rows, never trained on, make a control).")
@click.option("--name", help="The suite's name (default: memorisation-SOURCE).")
def memorisation(source: str, output: Path, prefix_words: int, continuation_words: int, split: str,
                 name: str | None) -> None:
    """Write a memorisation probe suite: each text's first K words as the prompt, its next M words as the answer.

    SOURCE is a .txt file (one text per line: canaries you planted), a .jsonl file (a JSON string, or an object
    with 'text' or a training row's 'completion'/'chosen', per line), or dataset:ID, a stored retune dataset. Run
    the suite before and after a retune; verbatim_continuation and near_verbatim_continuation say how often the
    model continues the texts word for word, and a gate file can bound them.
    """
    from evaltune.harness.loaders import SUITE_SUFFIXES
    from evaltune.harness.loaders.memorisation import probe_suite, suite_file_text

    if output.suffix.lower() not in SUITE_SUFFIXES:
        raise UserError(f"-o {output}: a suite file's name ends in .yaml; give a path such as probes.yaml "
                        "(nothing was written)")
    if output.exists():
        raise UserError(f"-o {output} already exists; move it away or choose another path (nothing was written)")
    texts = _probe_texts(source, split)
    label = source.partition(":")[2] if source.startswith("dataset:") else Path(source).stem
    with user_errors():
        suite = probe_suite(texts, prefix_words, continuation_words, name or f"memorisation-{label}", source)
    try:
        output.write_text(suite_file_text(suite), encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror}; choose another -o FILE") from None
    click.echo(f"wrote {len(suite.items)} memorisation probes ({prefix_words} words in, the next "
               f"{continuation_words} scored) to {output}; run it before and after a retune with "
               f"'evaltune run {output} --model MODEL'")


def _probe_texts(source: str, split: str) -> list[ProbeText]:
    """The texts of SOURCE: a file's, or a stored dataset's rows (their trained answers)."""
    from evaltune.harness.loaders.memorisation import ProbeText, read_texts, row_text

    if not source.startswith("dataset:"):
        with user_errors():
            return list(read_texts(Path(source).expanduser()))
    number = source.partition(":")[2]
    if not number.isdigit():
        raise UserError(f"{source}: write dataset:ID with the dataset's number, such as dataset:3; "
                        "'evaltune data list' shows them")
    from evaltune.retune.datasets import dataset_records
    from evaltune.store import store_session

    with store_session() as session:
        try:
            records = dataset_records(session, int(number), split)
        except LookupError as error:
            raise UserError(f"{source}: {error}") from None
    texts = [ProbeText(text, f"dataset {number} row {n}")
             for n, record in enumerate(records, start=1) if (text := row_text(record))]
    if not texts:
        raise UserError(f"{source}: no {split} rows with a text to probe; try --split all")
    return texts
