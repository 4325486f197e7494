"""Config: YAML + dotted overrides, defaults, validation that reports every problem at once."""

from pathlib import Path

import pytest
import yaml

from repo import CONFIGS
from text2sql.config import Config, describe_fields, load_config, parse_override, save_config
from text2sql.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_quickstart():
    cfg = load_config()
    assert cfg.model.name_or_path == "tiny:llama"
    assert cfg.data.train == "bundled"
    assert cfg.training["learning_rate"] == 2e-4
    assert cfg.model.trust_remote_code is False


def test_yaml_then_overrides_win(tmp_path):
    path = write(tmp_path, "output_dir: runs/a\ndata:\n  train: a.csv\ntraining:\n  learning_rate: 5e-5\n")
    cfg = load_config(
        path, ["data.train=b.csv", "output_dir=runs/b", "training.max_steps=7", "finetune.target_modules=[q, v]"]
    )
    assert cfg.data.train == "b.csv"
    assert cfg.output_dir == "runs/b"
    assert cfg.training["max_steps"] == 7
    # YAML 1.1 reads 5e-5 as a string; it must still become a float.
    assert cfg.training["learning_rate"] == pytest.approx(5e-5)
    assert cfg.finetune.target_modules == ["q", "v"]
    # user training values merge over the defaults rather than replacing them
    assert cfg.training["per_device_train_batch_size"] == 16


def test_fixed_key_names_exist():
    cfg = load_config(
        None,
        [
            "model.name_or_path=x",
            "data.train=t.csv",
            "data.validation=v.csv",
            "data.test=s.csv",
            "data.format=csv",
            "data.db_dir=dbs",
            "output_dir=o",
            "training.num_train_epochs=2",
        ],
    )
    assert (cfg.data.validation, cfg.data.test, cfg.data.format, cfg.data.db_dir) == ("v.csv", "s.csv", "csv", "dbs")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.trian=x", "did you mean 'data.train'"),
        ("modle.name_or_path=x", "did you mean 'model'"),
        ("training.learnig_rate=1", "did you mean 'training.learning_rate'"),
        ("finetune.rank=8", "finetune.rank: unknown key"),
    ],
)
def test_unknown_keys_suggest(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(None, [override])


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["training.max_steps=abc", "data.max_length=-1", "data.format=xml", "finetune.r=0"])
    msg = str(err.value)
    assert "4 problems" in msg
    for key in ("training.max_steps", "data.max_length", "data.format", "finetune.r"):
        assert key in msg
    assert "\n" not in msg


def test_a_long_list_of_problems_is_cut_with_a_count(tmp_path):
    wrong = tmp_path / "not_a_config.yaml"  # a data file passed as a config: every key unknown
    wrong.write_text("\n".join(f"column_{i}: {i}" for i in range(20)))
    with pytest.raises(ConfigError) as err:
        load_config(wrong)
    msg = str(err.value)
    assert "20 problems" in msg and "and 12 more" in msg and "column_7" in msg and "column_8" not in msg


@pytest.mark.parametrize(
    "override",
    ["training.per_device_train_batch_size=0", "training.learning_rate=-1", "training.max_steps=0", "data=3"],
)
def test_bad_values(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_warmup_ratio_alias_maps_to_transformers5_name():
    cfg = load_config(None, ["training.warmup_ratio=0.1"])
    assert cfg.training["warmup_steps"] == 0.1
    assert "warmup_ratio" not in cfg.training


def test_managed_keys_point_elsewhere():
    with pytest.raises(ConfigError, match="set 'output_dir' instead"):
        load_config(None, ["training.output_dir=x"])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("x=null") == (["x"], None)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("novalue")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["data.train=x.csv", "training.max_steps=3"])
    path = save_config(cfg, tmp_path / "run")
    again = load_config(path)
    assert again == cfg
    assert yaml.safe_load(path.read_text())["training"]["max_steps"] == 3


def test_every_field_has_help():
    rows = describe_fields(Config)
    assert rows and all(help_text for _, _, help_text in rows)


def test_presets_validate():
    root = CONFIGS
    presets = sorted(root.glob("*.yaml"))
    assert presets
    for preset in presets:
        first = preset.read_text().splitlines()[0]
        assert first.startswith(("# text2sql ", "# accelerate launch ")), (
            f"{preset.name} must start with the command that runs it"
        )
        assert preset.name in first, f"{preset.name}: the command must name the preset itself"
        load_config(preset)


def test_old_lora_section_still_reads_with_one_note(tmp_path, caplog):
    from text2sql.config import sections

    sections._note_renamed.cache_clear()
    path = tmp_path / "old.yaml"
    path.write_text("lora:\n  method: full\n  r: 8\n")
    with caplog.at_level("WARNING", logger="text2sql.config"):
        cfg = load_config(path)
        again = load_config(None, ["lora.r=4", "tuning.search_space.lora.dropout=[0.0, 0.1]"])
    assert cfg.finetune.method == "full" and cfg.finetune.r == 8 and "lora" not in cfg.to_dict()
    assert again.finetune.r == 4 and "finetune.dropout" in again.tuning.search_space
    notes = [r.getMessage() for r in caplog.records if "is now called 'finetune:'" in r.getMessage()]
    assert len(notes) == 1  # said once, however many configs use the old name
    with pytest.raises(ConfigError, match="both finetune: and its old name lora:"):
        load_config(None, ["lora.r=4", "finetune.r=8"])


def test_trainer_key_aliases_are_saved_under_their_names_and_noted_once(caplog):
    from text2sql.config import keys

    keys._note_alias.cache_clear()
    with caplog.at_level("INFO", logger="text2sql.config"):
        first = load_config(None, ["training.warmup_ratio=0.1", "training.evaluation_strategy=epoch"])
        load_config(None, ["training.warmup_ratio=0.2"])
    assert first.training["warmup_steps"] == 0.1 and "warmup_ratio" not in first.training
    assert first.training["eval_strategy"] == "epoch" and "evaluation_strategy" not in first.training
    notes = [r.getMessage() for r in caplog.records if "is an alias of" in r.getMessage()]
    assert notes == [
        "training.warmup_ratio is an alias of training.warmup_steps; configs are saved with the latter",
        "training.evaluation_strategy is an alias of training.eval_strategy; configs are saved with the latter",
    ]


def test_a_bare_no_means_the_word_for_trainer_arguments_that_take_words(tmp_path):
    cfg = load_config(write(tmp_path, "training:\n  eval_strategy: no\n  save_strategy: no\n"), ["training.bf16=no"])
    assert cfg.training["eval_strategy"] == "no" and cfg.training["save_strategy"] == "no"
    assert cfg.training["bf16"] is False
