"""The bad-input corpus: each case is (name, command line, words its one error line must hold).

In the command line and the words, ``{bad}`` is the corpus folder (``tests/bad_inputs/``), ``{tmp}`` the test's
temporary folder, ``{model}`` a tiny model folder, ``{adapter}`` a LoRA adapter for it and ``{other_adapter}``
one made for a model of another size. ``tests/test_bad_inputs.py`` runs every case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

BAD = Path(__file__).parent / "bad_inputs"
HUGE_ITEM_MB = 50


@dataclass(frozen=True)
class Case:
    name: str
    args: str
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    absent: tuple[str, ...] = ()  # words the message must not hold (a password)
    make: Callable[[Path], None] | None = None  # writes a generated input into {tmp}


def case(name: str, args: str, *words: str, env: dict[str, str] | None = None, absent: tuple[str, ...] = (),
         make: Callable[[Path], None] | None = None, owner: str = "") -> object:
    """One row of the table; ``owner`` names the file to fix where this case still fails (a strict xfail)."""
    marks = [pytest.mark.xfail(strict=True, reason=f"a traceback; the fix belongs in {owner}")] if owner else []
    return pytest.param(Case(name, args, words, tuple((env or {}).items()), absent, make), id=name, marks=marks)


def _huge_item(tmp: Path) -> None:
    """A JSONL file whose second item's input is 50 MB of text."""
    with (tmp / "huge.jsonl").open("w", encoding="utf-8") as out:
        out.write('{"id": "small", "input": "What is the capital of France?"}\n')
        out.write('{"id": "huge", "input": "' + "word " * (HUGE_ITEM_MB * 2**20 // 5) + '"}\n')


def _a_file(tmp: Path) -> None:
    (tmp / "weights.bin").write_bytes(b"\0" * 16)


def _a_suite_file(tmp: Path) -> None:
    (tmp / "smoke.yaml").write_text("name: mine\nitems: [{id: a, input: hi}]\n", encoding="utf-8")


RUN = "run {bad}/suites/%s --model {model}"
ITEMS = "run {bad}/items/%s --model {model}"
GATE = "gate 1 2 --gate {bad}/gates/%s"
IMPORT = "data import {bad}/datasets/%s"

SUITE_FILES = [
    case("suite-syntax-error", RUN % "syntax_error.yaml", "syntax_error.yaml:5", "invalid YAML on line 5",
         "check the indentation"),
    case("suite-tab-indent", RUN % "tab_indent.yaml", "tab_indent.yaml:3", "line 3"),
    case("suite-missing-name", RUN % "missing_name.yaml", "missing_name.yaml", "field 'name'", "non-empty text"),
    case("suite-no-items", RUN % "no_items.yaml", "no_items.yaml", "field 'items'", "give exactly one of items"),
    case("suite-item-without-id", RUN % "item_without_id.yaml", "item_without_id.yaml:5", "item #2", "field 'id'",
         "add a non-empty 'id'"),
    case("suite-item-without-input", RUN % "item_without_input.yaml", "item_without_input.yaml:5", "item q2",
         "field 'input'", "add a non-empty 'input'"),
    case("suite-references-wrong-type", RUN % "references_wrong_type.yaml", "references_wrong_type.yaml:3",
         "item capital-colombia", "field 'references'", "must be a list of texts, not a mapping"),
    case("suite-references-a-number", RUN % "references_number.yaml", "references_number.yaml:3",
         "item capital-colombia", "field 'references'", "expected a list of strings, got 3",
         'write references: ["..."]'),
    case("suite-tags-wrong-type", RUN % "tags_wrong_type.yaml", "item q1", "field 'tags'", "list of texts"),
    case("suite-flag-wrong-type", RUN % "flag_wrong_type.yaml", "item veltravia", "field 'expect_abstention'",
         "true or false"),
    case("suite-duplicate-ids", RUN % "duplicate_ids.yaml", "duplicate_ids.yaml", "item #3", "field 'id'",
         "already used by item #1"),
    case("suite-duplicate-key", RUN % "duplicate_key.yaml", "duplicate_key.yaml:6", "duplicate key 'references'"),
    case("suite-unknown-item-key", RUN % "unknown_item_key.yaml", "item q1", "field 'refrences'",
         "did you mean 'references'"),
    case("suite-unknown-top-key", RUN % "unknown_top_key.yaml", "field 'scorer'", "did you mean 'scorers'"),
    case("suite-unknown-scorer", RUN % "unknown_scorer.yaml", "unknown_scorer.yaml", "field 'scorers'",
         "unknown scorer 'exact_matc'", "did you mean 'exact_match'"),
    case("suite-validate-unknown-scorer", "suites validate {bad}/suites/unknown_scorer.yaml", "unknown_scorer.yaml",
         "field 'scorers'", "did you mean 'exact_match'"),
    case("suite-scorer-unknown-parameter", RUN % "scorer_unknown_parameter.yaml", "scorer_unknown_parameter.yaml",
         "field 'scorers[1].treshold'", "has no parameter 'treshold'", "did you mean 'threshold'"),
    case("suite-scorer-parameter-wrong-type", RUN % "scorer_parameter_wrong_type.yaml",
         "field 'scorers[1].threshold'", "must be a number, not 'high' (text)"),
    case("suite-scorer-parameter-out-of-range", RUN % "scorer_parameter_out_of_range.yaml",
         "field 'scorers[0].threshold'", "threshold must be between 0 and 1"),
    case("suite-scorer-not-a-choice", RUN % "scorer_not_a_choice.yaml", "field 'scorers[0].variant'",
         "must be 1, 2 or l, not 3"),
    case("suite-scorer-twice", RUN % "scorer_twice.yaml", "field 'scorers'", "the same scorer, rouge_l",
         "list each once"),
    case("suite-bad-temperature", RUN % "bad_temperature.yaml", "field 'generation.temperature'", "number >= 0"),
    case("suite-gold-out-of-range", RUN % "gold_out_of_range.yaml", "item planets", "field 'gold'",
         "index 3 is out of range"),
    case("suite-invalid-utf8", RUN % "invalid_utf8.yaml", "invalid_utf8.yaml:4", "not valid UTF-8",
         "save the file as UTF-8"),
    case("suite-empty", RUN % "empty.yaml", "empty.yaml", "the file is empty"),
    case("suite-top-level-list", RUN % "top_level_list.yaml", "top_level_list.yaml", "must be a mapping"),
    case("suite-items-not-list", RUN % "items_not_list.yaml", "field 'items'", "must be a list of items"),
    case("suite-bad-message-role", RUN % "bad_message_role.yaml", "item chat", "field 'input'", "role 'robot'"),
    case("suite-items-file-missing", RUN % "items_file_missing.yaml", "field 'items_file'", "no_such_items.jsonl",
         "relative to the suite file"),
    case("suite-unknown-source-format", RUN % "unknown_source_format.yaml", "field 'source.format'",
         "unknown format 'squad'"),
    case("suite-bad-template", RUN % "bad_template.yaml", "field 'template'", "unknown placeholder {question}"),
    case("suite-bom-then-error", RUN % "bom_then_error.yaml", "bom_then_error.yaml:3", "field 'inputt'",
         "did you mean 'input'"),
    case("suite-unknown-name", "run no-such-suite --model {model}", "no-such-suite", "built-in suites"),
    case("suite-assert-unknown-type", RUN % "assert_unknown_type.yaml", "assert_unknown_type.yaml:3", "item refund",
         "field 'assert[1].type'", "unknown assertion type 'contians'", "did you mean 'contains'"),
    case("suite-assert-invalid-regex", RUN % "assert_invalid_regex.yaml", "assert_invalid_regex.yaml:3",
         "item capital", "field 'assert[0].value'", "invalid regular expression"),
    case("suite-assert-invalid-schema", RUN % "assert_invalid_schema.yaml", "assert_invalid_schema.yaml:3",
         "item refund", "field 'assert[1].schema'", "not a valid JSON Schema"),
    case("suite-assert-missing-value", RUN % "assert_missing_value.yaml", "assert_missing_value.yaml:3",
         "item refund", "field 'assert[0].value'", "contains needs 'value'"),
    case("suite-assert-not-a-list", RUN % "assert_not_a_list.yaml", "item refund", "field 'assert'",
         "must be a list of assertions"),
    case("suite-assert-on-choices", RUN % "assert_on_choices.yaml", "item planets", "field 'assert'",
         "multiple-choice item generates no text"),
    case("suite-defaults-unknown-key", RUN % "defaults_unknown_key.yaml", "defaults_unknown_key.yaml:3",
         "field 'defaults.asserts'", "did you mean 'assert'"),
    case("suite-defaults-bad-assertion", RUN % "defaults_bad_assertion.yaml", "defaults_bad_assertion.yaml:3",
         "field 'defaults.assert[1].schema'", "not a valid JSON Schema"),
]

ITEM_FILES = [
    case("jsonl-broken-line", ITEMS % "broken_line.jsonl", "broken_line.jsonl:3", "item #3",
         "line 3 is not valid JSON", "one JSON object per line"),
    case("jsonl-line-not-object", ITEMS % "line_not_object.jsonl", "line_not_object.jsonl:2", "item #2",
         "must be a mapping"),
    case("jsonl-missing-input", ITEMS % "missing_input.jsonl", "missing_input.jsonl:2", "item q2", "field 'input'"),
    case("jsonl-assert-invalid-regex", ITEMS % "assert_invalid_regex.jsonl", "assert_invalid_regex.jsonl:2",
         "item refund", "field 'assert[1].value'", "invalid regular expression"),
    case("jsonl-duplicate-ids", ITEMS % "duplicate_ids.jsonl", "duplicate_ids.jsonl", "item #2",
         "already used by item #1"),
    case("jsonl-invalid-utf8", ITEMS % "invalid_utf8.jsonl", "invalid_utf8.jsonl:2", "not valid UTF-8"),
    case("jsonl-empty", ITEMS % "empty.jsonl", "empty.jsonl", "field 'items'", "no items"),
    case("jsonl-reference-not-text", ITEMS % "reference_not_text.jsonl", "item q1", "field 'references'",
         "entry 0 must be non-empty text"),
    case("csv-missing-input-column", ITEMS % "missing_input_column.csv", "missing_input_column.csv",
         "unknown column 'question'"),
    case("csv-unknown-column", ITEMS % "unknown_column.csv", "field 'refrences'", "did you mean 'references'"),
    case("csv-extra-cells", ITEMS % "extra_cells.csv", "extra_cells.csv:3", "item q2", "more cells than the header",
         "quote cells"),
    case("csv-bad-gold", ITEMS % "bad_gold.csv", "item planets", "field 'gold'", "separated by '|'"),
    case("csv-bad-flag", ITEMS % "bad_flag.csv", "bad_flag.csv:3", "item q2", "field 'expect_abstention'",
         "'maybe' is not true or false"),
    case("truthfulqa-missing-key", "run truthfulqa_mc:{bad}/formats/truthfulqa_mc_missing_mc2.json --model {model}",
         "truthfulqa_mc_missing_mc2.json", "field 'mc2_targets'", "missing 'mc2_targets'"),
    case("crows-pairs-missing-column", "run crows_pairs:{bad}/formats/crows_pairs_missing_column.csv --model {model}",
         "crows_pairs_missing_column.csv:2", "field 'stereo_antistereo'"),
    case("bbq-missing-fields", "run bbq:{bad}/formats/bbq_missing_fields.jsonl --model {model}",
         "bbq_missing_fields.jsonl:1", "missing '"),
    case("bold-wrong-shape", "run bold:{bad}/formats/bold_wrong_shape_prompt.json --model {model}",
         "bold_wrong_shape_prompt.json", "field 'American_actors'", "lists of prompts"),
    case("item-of-50-mb", "run {tmp}/huge.jsonl --model {model}", "huge.jsonl:2", "item huge", "field 'input'",
         "over the limit of 1,000,000", "EVALTUNE_MAX_ITEM_CHARS", make=_huge_item),
    case("item-over-a-set-limit", RUN % "bom_crlf_valid.yaml", "bom_crlf_valid.yaml:3", "item q1", "field 'input'",
         "over the limit of 20", env={"EVALTUNE_MAX_ITEM_CHARS": "20"}),
    case("item-limit-not-a-number", RUN % "bom_crlf_valid.yaml", "EVALTUNE_MAX_ITEM_CHARS", "whole number",
         env={"EVALTUNE_MAX_ITEM_CHARS": "lots"}),
]

MODELS = [
    case("model-no-such-folder", "run smoke --model {tmp}/no_such_model", "no_such_model", "no folder at",
         "pass a local model folder"),
    case("model-is-a-file", "run smoke --model {tmp}/weights.bin", "weights.bin", "is a file",
         "folder that holds config.json", make=_a_file),
    case("model-without-config", "run smoke --model {bad}/models/no_config", "no_config has no config.json",
         "transformers model folder"),
    case("model-broken-config", "run smoke --model {bad}/models/broken_config", "broken_config/config.json",
         "not valid JSON (line 3"),
    case("model-config-without-type", "run smoke --model {bad}/models/no_model_type", "no_model_type/config.json",
         "no 'model_type'"),
    case("model-openai-not-a-url", "run smoke --model openai:localhost", "openai:localhost", "no http(s) URL"),
    case("model-openai-with-adapter", "run smoke --model openai:http://127.0.0.1:9/v1 --model-name m "
         "--adapter {adapter}", "an adapter cannot be applied", "--lora-modules"),
    case("model-stored-unknown", "run smoke --model model:999", "no model version 999", "evaltune models list"),
    case("adapter-no-such-folder", "run smoke --model {model} --adapter {tmp}/no_adapter", "no_adapter",
         "no folder at", "PeftModel.save_pretrained"),
    case("adapter-is-a-file", "run smoke --model {model} --adapter {tmp}/weights.bin", "weights.bin",
         "a file, not a folder", make=_a_file),
    case("adapter-without-config", "run smoke --model {model} --adapter {bad}/adapters/no_config",
         "no adapter_config.json in", "adapters/no_config"),
    case("adapter-broken-config", "run smoke --model {model} --adapter {bad}/adapters/broken_config",
         "broken_config/adapter_config.json is not valid JSON (line 3"),
    case("adapter-not-peft", "run smoke --model {model} --adapter {bad}/adapters/not_peft",
         "not_peft/adapter_config.json has no 'peft_type'"),
    case("adapter-without-weights", "run smoke --model {model} --adapter {bad}/adapters/no_weights",
         "no weights in", "adapters/no_weights", "adapter_model.safetensors or adapter_model.bin"),
    case("adapter-for-another-model", "run smoke --model {model} --adapter {other_adapter}",
         "was made for another model", "q_proj", "pass the adapter's own base model with --model"),
]

GATE_FILES = [
    case("gate-syntax-error", GATE % "syntax_error.yaml", "syntax_error.yaml:3", "invalid YAML on line 3"),
    case("gate-empty", GATE % "empty.yaml", "empty.yaml", "the gate file is empty"),
    case("gate-top-level-list", GATE % "top_level_list.yaml", "top_level_list.yaml", "expected a mapping 'gates:'"),
    case("gate-unknown-rule", GATE % "unknown_rule.yaml", "unknown_rule.yaml", "gate 'exact_match', rule 'minimum'",
         "did you mean 'min'"),
    case("gate-wrong-type", GATE % "wrong_type.yaml", "rule 'min'", "field 'value' must be a number, got 'high'"),
    case("gate-quoted-number", GATE % "quoted_number.yaml", "field 'value'", "write it without quotes"),
    case("gate-duplicate-metric", GATE % "duplicate_metric.yaml", "duplicate_metric.yaml:4",
         "duplicate key 'exact_match'"),
    case("gate-invalid-utf8", GATE % "invalid_utf8.yaml", "invalid_utf8.yaml:2", "not valid UTF-8"),
    case("gate-bad-alpha", GATE % "bad_alpha.yaml", "rule 'no_significant_regression'", "field 'alpha'",
         "between 0 and 1"),
    case("gate-unknown-regression-field", GATE % "unknown_regression_field.yaml", "unknown field 'min_efect'",
         "did you mean 'min_effect'"),
    case("gate-rules-not-mapping", GATE % "rules_not_mapping.yaml", "gate 'exact_match'",
         "expected a mapping of rules"),
    case("gate-extra-top-level-key", GATE % "extra_top_level_key.yaml", "unknown top-level key 'gate'"),
    case("gate-file-missing", "gate 1 2 --gate {tmp}/no_gates.yaml", "no_gates.yaml", "file not found"),
    case("gate-checked-before-the-run", "run smoke --model {model} --baseline 1 --gate {bad}/gates/wrong_type.yaml",
         "wrong_type.yaml", "field 'value'"),
    case("gate-without-baseline", "run smoke --model {model} --gate {bad}/gates/valid.yaml",
         "--gate needs --baseline"),
    case("gate-unknown-run", "gate 1 999 --gate {bad}/gates/valid.yaml", "no run with id 999"),
]

DATASET_FILES = [
    case("dataset-broken-line", IMPORT % "broken_line.jsonl", "broken_line.jsonl:2", "not valid JSON"),
    case("dataset-missing-column", IMPORT % "missing_rejected.jsonl", "missing_rejected.jsonl:2",
         "column 'rejected' is missing", "prompt, chosen, rejected"),
    case("dataset-unknown-column", IMPORT % "unknown_column.jsonl",
         "unknown_column.jsonl:1:", "unknown column 'rejcted'",
         "did you mean 'rejected'"),
    case("dataset-chosen-equals-rejected", IMPORT % "chosen_equals_rejected.jsonl",
         "chosen_equals_rejected.jsonl:2:", "column 'rejected'",
         "same text as 'chosen'"),
    case("dataset-label-not-boolean", IMPORT % "label_not_boolean.jsonl",
         "label_not_boolean.jsonl:2:", "column 'label'",
         "true or false"),
    case("dataset-prompt-wrong-type", IMPORT % "prompt_wrong_type.jsonl",
         "prompt_wrong_type.jsonl:1:", "column 'prompt'",
         "non-empty text or a list"),
    case("dataset-answer-two-messages", IMPORT % "chosen_two_messages.jsonl",
         "chosen_two_messages.jsonl:1:", "column 'chosen'",
         '"role": "assistant"'),
    case("dataset-empty-completion", IMPORT % "empty_completion.jsonl",
         "empty_completion.jsonl:2:", "column 'completion'",
         "non-empty text"),
    case("dataset-empty", IMPORT % "empty.jsonl", "empty.jsonl", "holds no rows"),
    case("dataset-invalid-utf8", IMPORT % "invalid_utf8.jsonl", "invalid_utf8.jsonl:2", "not valid UTF-8"),
    case("dataset-row-not-object", IMPORT % "row_not_object.jsonl",
         "row_not_object.jsonl:1:", "expected a JSON object"),
    case("dataset-not-json-lines", IMPORT % "rows.csv", "rows.csv", "only JSON Lines"),
    case("dataset-no-such-file", "data import {tmp}/none.jsonl", "none.jsonl", "file not found"),
    case("dataset-other-method", IMPORT % "chosen_equals_rejected.jsonl --method kto",
         "chosen_equals_rejected.jsonl:1:",
         "unknown column 'chosen'", "a kto file has the columns prompt, completion, label"),
    case("score-input-broken-line", "score --input {bad}/outputs/broken_line.jsonl --scorers exact_match",
         "broken_line.jsonl:2", "not valid JSON"),
    case("score-input-missing-output", "score --input {bad}/outputs/missing_output.jsonl --scorers exact_match",
         "missing_output.jsonl:2", "field 'output'"),
]

ARGUMENTS = [
    case("cli-unknown-command", "rn smoke", "No such command 'rn'"),
    case("cli-missing-argument", "run", "Missing argument 'SUITE'", "evaltune run --help"),
    case("cli-unknown-option", "run smoke --limt 3", "--limt", "--limit"),
    case("cli-limit-not-a-number", "run smoke --limit x", "'--limit'", "'x'"),
    case("cli-limit-zero", "run smoke --limit 0", "'--limit'", "0 is not in the range"),
    case("cli-batch-size-zero", "run smoke --batch-size 0", "'--batch-size'", "0 is not in the range"),
    case("cli-temperature-negative", "run smoke --temperature -1", "'--temperature'", "not in the range x>=0"),
    case("cli-top-p-zero", "run smoke --top-p 0", "'--top-p'", "not in the range 0<x<=1"),
    case("cli-max-new-tokens-zero", "run smoke --max-new-tokens 0", "'--max-new-tokens'", "0 is not in the range"),
    case("cli-samples-zero", "run smoke --samples 0", "'--samples'", "0 is not in the range"),
    case("cli-suites-show-unknown", "suites show no-such-suite", "no-such-suite", "built-in suites: "),
    case("cli-suites-copy-unknown", "suites copy no-such-suite {tmp}", "no-such-suite", "built-in suites: "),
    case("cli-suites-copy-not-yaml", "suites copy smoke {tmp}/smoke.txt", "smoke.txt", "not a folder and not a .yaml",
         "path ending in .yaml"),
    case("cli-suites-copy-over-a-file", "suites copy smoke {tmp}", "{tmp}/smoke.yaml already exists",
         "choose another DEST", make=_a_suite_file),
    case("cli-suites-schema-no-folder", "suites schema -o {tmp}/no/such/folder/suite.schema.json",
         "cannot write the schema to {tmp}/no/such/folder/suite.schema.json", "choose another -o FILE"),
    case("cli-suites-schema-onto-a-folder", "suites schema -o {tmp}", "'-o'", "is a directory"),
    case("cli-unknown-scorer", "run smoke --model {model} --scorers exact_match,exact_matc", "--scorers",
         "unknown scorer 'exact_matc'", "did you mean 'exact_match'"),
    case("cli-score-unknown-scorer", "score 1 --scorers tokenf1", "--scorers", "did you mean 'token_f1'"),
    case("cli-scorer-parameter-out-of-range", "run smoke --model {model} --scorers 'similar(threshold=2)'",
         "--scorers", "threshold must be between 0 and 1"),
    case("cli-scorer-bad-id", "run smoke --model {model} --scorers 'similar(threshold=0.7'", "--scorers",
         "write NAME or NAME(param=value, ...)"),
    case("cli-score-same-scorer-twice", "score 1 --scorers rouge,rouge_l", "--scorers",
         "'rouge' and 'rouge_l' are the same scorer (rouge_l)"),
    case("cli-score-no-scorers", "score 1 --scorers ,", "--scorers", "name at least one scorer"),
    case("cli-score-unknown-run", "score 999 --scorers exact_match", "no run 999"),
    case("cli-runs-show-unknown", "runs show 999", "no run 999", "evaltune runs list"),
    case("cli-runs-show-failures-unknown", "runs show 999 --failures", "no run 999", "evaltune runs list"),
    case("cli-runs-show-not-a-number", "runs show abc", "'RUN_ID'", "'abc' is not a valid integer"),
    case("cli-runs-outputs-unknown-run", "runs outputs 999", "no run 999", "evaltune runs list"),
    case("cli-runs-outputs-unknown-tag", "runs outputs 1 --tag maths", "--tag", "'maths'", "did you mean 'math'",
         "its tags: history, math"),
    case("cli-runs-outputs-unknown-scorer", "runs outputs 1 --scorer fluncy", "--scorer", "did you mean 'fluency'"),
    case("cli-runs-outputs-unknown-format", "runs outputs 1 --format xml", "'--format'", "'xml'"),
    case("cli-report-unknown-run", "report 1 999", "no run with id 999"),
    case("cli-report-no-shared-items", "report 1 3", "share no items"),
    case("cli-report-one-run", "report 1", "give BASELINE and CANDIDATE"),
    case("cli-history-unknown-suite", "report --history no-such-suite", "no-such-suite"),
    case("cli-data-build-unknown-campaign", "data build --campaign 999 --strategy pairwise", "no campaign 999"),
    case("cli-data-build-unknown-strategy", "data build --campaign 1 --strategy best", "'--strategy'", "'best'"),
    case("cli-data-build-zero-gap", "data build --campaign 1 --strategy likert-gap --min-gap 0", "'--min-gap'",
         "0.0<x<=4.0"),
    case("cli-data-export-unknown-dataset", "data export 999 -o {tmp}/rows.jsonl", "no dataset 999"),
    case("cli-data-export-to-a-folder", "data export 1 -o {bad}", "'--output'", "is a directory"),
    case("cli-retune-unknown-dataset", "retune --model {model} --dataset 999", "no dataset 999"),
    case("cli-retune-zero-epochs", "retune --model {model} --dataset 1 --epochs 0", "epochs must be positive"),
    case("cli-retune-lr-not-a-number", "retune --model {model} --dataset 1 --lr nan", "learning_rate",
         "must be positive, got nan"),
    case("cli-data-build-holdout-not-a-number", "data build --campaign 1 --strategy pairwise --holdout nan",
         "holdout must be in [0, 1), got nan"),
    case("cli-retune-lora-r-zero", "retune --model {model} --dataset 1 --lora-r 0", "lora_r must be at least 1",
         "got 0"),
    case("cli-retune-unknown-base", "retune --model model:999 --dataset 1", "--model", "no model version 999"),
    case("cli-retune-empty-dataset", "retune --model {model} --dataset 1", "--dataset",
         "dataset 1 (pairwise) has no training rows", "evaltune data build"),
    case("cli-retune-too-small-dataset", "retune --model {model} --dataset 2", "--dataset",
         "dataset 2 (pairwise) has 3 training rows, fewer than the 8 a retune needs", "--force"),
    case("cli-retune-wrong-method", "retune --model {model} --dataset 3 --method dpo", "--dataset",
         "dataset 3 (kto) holds kto rows, which dpo cannot train on", "retune it with --method kto"),
    case("cli-retune-unknown-eval-suite", "retune --model {model} --dataset 2 --force --eval-after nosuchsuite",
         "--eval-after", "nosuchsuite", "is not a built-in suite"),
    case("cli-retune-adapter-base", "retune --model model:2 --dataset 2 --force", "--model",
         "model:2 is an adapter", "retune its base model:1"),
    case("cli-retune-endpoint-base", "retune --model openai:http://127.0.0.1:9/v1 --dataset 2 --force",
         "--model 'openai:http://127.0.0.1:9/v1'", "weights cannot be trained here", "a model folder"),
    case("cli-data-build-no-rows", "data build --campaign 1 --strategy pairwise",
         "strategy pairwise made no training rows from the 4 ratings of campaign 1",
         "4 ratings judge one output, not an A/B pair", "strategy likert-gap makes 1, kto makes 3", "--allow-empty"),
    case("cli-jobs-show-unknown", "jobs show 999", "no retune job 999"),
    case("cli-jobs-cancel-unknown", "jobs cancel 999", "999"),
    case("cli-lineage-unknown-model", "lineage model:999", "999"),
    case("cli-lineage-not-a-spec", "lineage banana", "'banana'", "model:ID"),
    case("cli-campaign-unknown-run", "campaigns create --runs 999", "no run 999"),
    case("cli-campaign-runs-not-ids", "campaigns create --runs a,b", "--runs 'a,b'", "separated by commas"),
    case("cli-campaign-bad-filter", "campaigns create --runs 1 --filter exact_match=>1", "exact_match=>1"),
    case("cli-campaign-overlap-zero", "campaigns create --runs 1 --overlap 0", "'--overlap'"),
    case("cli-campaign-unknown-scorer", "campaigns create --runs 1,2 --filter hallucination>0.5",
         "the filter 'hallucination>0.5'", "unknown scorer 'hallucination' (did you mean 'hallucinated'?)",
         "exact_match, fluency, hallucinated", "evaltune score"),
    case("cli-campaign-unknown-tag", "campaigns create --runs 1 --filter tag=maths",
         "unknown tag 'maths' (did you mean 'math'?)", "history, math"),
    case("cli-campaign-unknown-suite", "campaigns create --runs 1,3 --filter suite=qaa",
         "unknown suite 'qaa' (did you mean 'qa'?)", "the suites of runs 1, 3: other, qa"),
    case("cli-campaign-close-unknown", "campaigns close 999", "there is no campaign 999", "evaltune campaigns list"),
    case("cli-users-unlock-unknown", "users unlock ratter", "no user 'ratter' (did you mean 'rater'?)",
         "evaltune users list"),
    case("cli-users-reset-password-unknown", "users reset-password ratter --password-stdin",
         "no user 'ratter' (did you mean 'rater'?)"),
    case("cli-campaign-guidelines-not-utf8",
         "campaigns create --runs 1 --guidelines {bad}/text/invalid_utf8_guidelines.md",
         "invalid_utf8_guidelines.md:4", "not valid UTF-8"),
    case("cli-ratings-export-unknown-campaign", "ratings export --campaign 999 --format jsonl -o {tmp}/r.jsonl",
         "--campaign", "no campaign 999"),
    case("cli-ratings-export-no-such-folder", "ratings export --format jsonl -o {tmp}/no/such/folder/r.jsonl",
         "r.jsonl", "cannot write"),
    case("cli-users-unknown-role", "users add bob --role god --password-stdin", "'--role'", "'god'"),
    case("env-threads-not-a-number", "run smoke --model {model}", "EVALTUNE_THREADS", "whole number",
         env={"EVALTUNE_THREADS": "many"}),
    case("env-home-is-a-file", "run smoke --model {model}", "EVALTUNE_HOME", "weights.bin",
         env={"EVALTUNE_HOME": "{tmp}/weights.bin"}, make=_a_file),
    case("store-url-unparseable", "runs list", "cannot parse the database URL", "EVALTUNE_DB_URL",
         env={"EVALTUNE_DB_URL": "not a url"}),
    case("store-url-unknown-database", "runs list", "'mongodb://127.0.0.1/evaltune'", "set EVALTUNE_DB_URL to",
         env={"EVALTUNE_DB_URL": "mongodb://127.0.0.1/evaltune"}),
    case("store-url-no-such-folder", "runs list", "cannot open the database", "no/such/folder",
         env={"EVALTUNE_DB_URL": "sqlite:///{tmp}/no/such/folder/store.db"}),
    case("store-url-unreachable-server", "runs list", "cannot open the database", "postgres:***@127.0.0.1:9",
         env={"EVALTUNE_DB_URL": "postgresql+psycopg://postgres:hunter2@127.0.0.1:9/evaltune"},
         absent=("hunter2",)),
]

CASES = SUITE_FILES + ITEM_FILES + MODELS + GATE_FILES + DATASET_FILES + ARGUMENTS

# Cases whose command writes to the store on success: they run on PostgreSQL too.
STORE_WRITERS = {"dataset-missing-column", "dataset-chosen-equals-rejected", "cli-retune-unknown-dataset",
                 "cli-retune-zero-epochs", "cli-retune-too-small-dataset", "cli-retune-unknown-eval-suite",
                 "cli-data-build-no-rows", "cli-campaign-bad-filter", "gate-checked-before-the-run",
                 "cli-campaign-unknown-scorer", "cli-users-unlock-unknown",
                 "adapter-for-another-model", "suite-duplicate-ids"}
