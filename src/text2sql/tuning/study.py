"""`text2sql tune`: an Optuna study over the config's search space, under `<output_dir>/tuning/`.

The data is prepared once, as the run's own `<output_dir>/data/` stage (so `text2sql run best.yaml`
reuses it), and shared by every trial. Each trial trains and is scored on the validation split;
a trial that fails (out of memory, NaN loss) is recorded as failed and the study goes on, while bad
input (a config error) stops it. The study lives in `<output_dir>/tuning/study.db` (or
`tuning.storage`), so a stopped study resumes where it stopped: the same config continues it and
`tuning.n_trials` counts every finished trial; a different config or search space is refused
unless `force` starts a new study.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from text2sql.config import Config, build_config, set_dotted
from text2sql.config.search import check_search_space, resolve_space
from text2sql.config.space import Spec
from text2sql.data.prepare import prepare
from text2sql.errors import ConfigError, MissingExtraError, OutputExistsError, Text2SQLError, first_line
from text2sql.models.loading import open_model
from text2sql.rundir import changed_keys, fingerprint
from text2sql.tuning import report
from text2sql.tuning.results import TrialRow, TuneResult, public_url
from text2sql.tuning.trial import SHOWN_METRICS, run_trial

log = logging.getLogger("text2sql.tune")

IDENTITY_ATTR = "text2sql.identity"
_KILLED = "did not finish (its process ended)"  # failed with no recorded error: found still running


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise MissingExtraError("text2sql tune", "optuna", "tune") from None
    return optuna


def study_identity(cfg: Config, space: dict[str, Spec]) -> dict[str, Any]:
    """What the trials' scores depend on; another identity is another study.

    The tuned keys' own values, the study's length (n_trials, timeout), its sampler and where
    things are written are left out: changing them continues the same study."""
    base = cfg.to_dict()
    for key in ("output_dir", "tuning", "tracking", "launch", "serving"):
        base.pop(key, None)
    base["callbacks"].pop("progress", None)  # display only
    base["model"].pop("threads", None)  # speed only
    for key in space:
        *parents, leaf = key.split(".")
        node = base
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    identity = {
        "config": base,
        "search_space": {key: spec.to_dict() for key, spec in space.items()},
        "metric": cfg.tuning.metric,
        "direction": cfg.tuning.resolved_direction(),
    }
    return json.loads(json.dumps(identity, default=str))  # as the storage will give it back


def _say(message: str) -> None:
    print(message, flush=True)  # the trainer logs to stderr meanwhile: keep the two in order


def _storage_url(cfg: Config, root: Path) -> str:
    url = cfg.tuning.storage or f"sqlite:///{(root / 'study.db').resolve()}"
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        # SQLAlchemy before 2.1 takes a bare postgresql:// for psycopg2; text2sql[postgres] installs psycopg 3.
        return f"postgresql+psycopg://{rest}"
    return url


_HEARTBEAT = "heartbeat"  # when the worker running a trial last said it is alive (time.time())
_BEAT_EVERY = 30.0  # seconds
_STALE_AFTER = 600.0  # a trial whose worker has been silent this long is taken for cut off


def _fail_cut_off(optuna, study, say: Callable[[str], None]) -> None:
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _cut_off(stale):
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
            say(f"trial #{stale.number} was cut off (its worker stopped); recorded as failed (not counted)")


class _Heartbeat:
    """Records every `_BEAT_EVERY` seconds, while a trial runs, that its worker is alive: workers on
    other machines take a trial whose heartbeat stopped for cut off."""

    def __init__(self, trial):
        self.trial = trial
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(_BEAT_EVERY):
            try:
                self.trial.set_user_attr(_HEARTBEAT, time.time())
            except Exception:  # the storage is briefly away: the next beat tries again
                log.debug("heartbeat of trial #%d not recorded", self.trial.number, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


_SURPLUS = "surplus"  # a trial asked by a worker when the others had already claimed n_trials


def _worker() -> str:
    """This process, as recorded on the trials it runs (several workers may share one study)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _cut_off(trial) -> bool:
    """A trial marked running whose worker is gone: a process of this machine that no longer runs,
    or a worker elsewhere whose heartbeat stopped (`_Heartbeat`)."""
    worker = trial.user_attrs.get("worker")
    if worker is None:
        return True  # recorded before workers were: one tune at a time
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return time.time() - trial.user_attrs.get(_HEARTBEAT, 0) > _STALE_AFTER
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _study_name(cfg: Config) -> str:
    return cfg.tuning.study_name or Path(cfg.output_dir).resolve().name or "text2sql"


def _trial_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("trial-*")) if root.is_dir() else []


def _existing_study(optuna, cfg: Config, root: Path, storage: str, name: str):
    """The stored study of this name, or None; never creates the default study file."""
    if cfg.tuning.storage is None and not (root / "study.db").is_file():
        return None
    for attempt in range(3):
        try:
            names = optuna.get_all_study_names(storage=storage)
            break
        except Exception as exc:  # an unreachable database, a corrupt file
            # Workers started together race to create optuna's tables; the loser finds them made.
            if attempt < 2 and ("already exists" in str(exc) or "UniqueViolation" in str(exc)):
                time.sleep(1.0 + attempt)
                continue
            raise ConfigError(f"tuning.storage {public_url(storage)} cannot be opened ({first_line(exc)})") from None
    if name not in names:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def _start_over(optuna, cfg: Config, root: Path, storage: str, name: str) -> None:
    """--force: drop the study and every trial folder."""
    if cfg.tuning.storage is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    if _existing_study(optuna, cfg, root, storage, name) is not None:
        optuna.delete_study(study_name=name, storage=storage)
    for path in [*_trial_dirs(root), root / "best.yaml", root / "trials.csv"]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _check_same_study(study, identity: dict[str, Any], root: Path, name: str) -> None:
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if stored is None:
        raise OutputExistsError(
            f"study '{name}' in the tuning storage was not made by text2sql tune; choose another "
            "tuning.study_name, or pass --force to replace it"
        )
    if fingerprint(stored) != fingerprint(identity):
        raise OutputExistsError(
            f"{root} holds a study of a different config (changed: {_what_changed(stored, identity)}); "
            "pass --force to start a new study, or choose another output_dir"
        )


def _what_changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = changed_keys(old.get("config", {}), new["config"])
    old_space, new_space = old.get("search_space", {}), new["search_space"]
    keys += [
        f"tuning.search_space.{k}"
        for k in sorted(old_space.keys() | new_space.keys())
        if old_space.get(k) != new_space.get(k)
    ]
    keys += [f"tuning.{k}" for k in ("metric", "direction") if old.get(k) != new[k]]
    return ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")


def _sampler(optuna, cfg: Config, offset: int):
    # A resumed study must not replay the seed's first draws: the seed moves on by the trials done.
    seed = None if cfg.tuning.seed is None else cfg.tuning.seed + offset
    if cfg.tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE samples at random for its first trials; Optuna's 10 would leave a short study all random.
    startup = min(10, max(2, cfg.tuning.n_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _claimed(study, before: int | None = None) -> int:
    """Trials that count toward tuning.n_trials, and trials that are running now (here or in another
    worker sharing the study); with `before`, only those numbered lower."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if (before is None or t.number < before)
        and (_counts(t) or (t.state.name == "RUNNING" and not t.user_attrs.get(_SURPLUS)))
    )


def _counts(trial) -> bool:
    """Whether a finished trial counts toward tuning.n_trials: not when the study was stopped during
    it (an interrupt, bad input) or its process was killed (failed without a recorded error)."""
    state = trial.state.name
    if state in ("COMPLETE", "PRUNED"):
        return True
    return state == "FAIL" and "error" in trial.user_attrs and not trial.user_attrs.get("stopped")


def _pruner(optuna, cfg: Config):
    if cfg.tuning.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    return optuna.pruners.NopPruner()


def _one_line(exc: BaseException) -> str:
    text = first_line(exc)
    return text if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def rows_of(study) -> list[TrialRow]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(_SURPLUS):
            continue  # asked and closed unrun (see the loop in tune)
        rows.append(
            TrialRow(
                number=t.number,
                state=t.state.name,
                value=t.value if t.state.name in ("COMPLETE", "PRUNED") else None,
                params=dict(t.params),
                seconds=t.user_attrs.get("seconds"),
                error=t.user_attrs.get("error") or (_KILLED if t.state.name == "FAIL" else None),
                metrics=t.user_attrs.get("metrics", {}),
                started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
            )
        )
    return rows


def _best(rows: list[TrialRow], direction: str) -> TrialRow | None:
    done = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda r: r.value or 0.0)


def tune(cfg: Config, *, force: bool = False, say: Callable[[str], None] = _say) -> TuneResult:
    """Run (or continue) the study of `cfg`; returns every trial, the best one and where its config is."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.INFO if log.isEnabledFor(logging.DEBUG) else optuna.logging.WARNING)
    if "://" in cfg.output_dir:
        raise ConfigError(f"output_dir={cfg.output_dir}: text2sql tune needs a local output_dir")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "text2sql tune runs trials one after another in one process; start it without accelerate launch / torchrun"
        )

    space, is_default = resolve_space(cfg)
    if is_default:  # the default space is checked like a written one
        _, problems = check_search_space(cfg, {k: s.to_dict() for k, s in space.items()})
        if problems:
            raise ConfigError(f"the default search space does not fit this config: {problems[0]}")
    metric, direction = cfg.tuning.metric, cfg.tuning.resolved_direction()
    root = Path(cfg.output_dir) / "tuning"
    storage, name = _storage_url(cfg, root), _study_name(cfg)
    identity = study_identity(cfg, space)

    # Refuse a different study before anything is written.
    if force:
        _start_over(optuna, cfg, root, storage, name)
    existing = _existing_study(optuna, cfg, root, storage, name)
    if existing is not None:
        _check_same_study(existing, identity, root, name)
    elif _trial_dirs(root):
        raise OutputExistsError(
            f"{root} holds trial folders of no study named '{name}' in {public_url(storage)}; pass --force to "
            "start over, or choose another output_dir"
        )

    model, prepared = _prepared(cfg, force, say)

    root.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=storage, study_name=name, direction=direction, pruner=_pruner(optuna, cfg), load_if_exists=True
    )
    if existing is None:
        study.set_user_attr(IDENTITY_ATTR, identity)
    _fail_cut_off(optuna, study, say)
    study.sampler = _sampler(optuna, cfg, len(study.trials))

    done = sum(1 for t in study.get_trials(deepcopy=False) if _counts(t))
    want = cfg.tuning.n_trials
    shown_space = ", ".join(f"{k} {s.describe()}" for k, s in space.items())
    say(f"study '{name}': {direction} {metric} over {'the default space: ' if is_default else ''}{shown_space}")
    if done >= want:
        say(f"{done} of {want} trials already done; nothing to run (raise tuning.n_trials or --n-trials for more)")
    elif done:
        say(f"resuming: {done} of {want} trials already done")

    ran = _run_trials(optuna, study, cfg, space, root, prepared.path, model, done, say)

    rows = rows_of(study)
    best = _best(rows, direction)
    csv_path = report.write_trials_csv(root / "trials.csv", rows, space, metric)
    result = TuneResult(
        root=root,
        study_name=name,
        storage=storage,
        metric=metric,
        direction=direction,
        space=space,
        default_space=is_default,
        trials=rows,
        best=best,
        best_config=None,
        trials_csv=csv_path,
        data=prepared.path,
        ran=ran,
    )
    if best is None:
        finished_rows = [r for r in rows if r.state != "RUNNING"]
        last = next((r.error for r in reversed(finished_rows) if r.error), None)
        raise Text2SQLError(
            f"no trial of study '{name}' completed ({len(finished_rows)} failed or pruned"
            + (f"; the last: {last}" if last else "")
            + f"); see {csv_path}"
        )
    best_cfg = apply_params(cfg, best.params)  # output_dir stays: `run best.yaml` reuses the prepared data
    result.best_config = report.write_best_config(root / "best.yaml", best_cfg, result)
    return result


def _run_one(optuna, study, trial, cfg: Config, params: dict[str, Any], trial_dir: Path, data: Path, model):
    """Run one asked trial and tell the study how it ended: (state, value, error)."""
    began = time.monotonic()

    def finish(state: str, value: float | None = None, error: str | None = None, metrics=None, stopped=False):
        trial.set_user_attr("seconds", round(time.monotonic() - began, 1))
        if error:
            trial.set_user_attr("error", error)
        if stopped:  # the study stopped during this trial: it does not count toward n_trials
            trial.set_user_attr("stopped", True)
        if metrics:
            trial.set_user_attr("metrics", {k: metrics[k] for k in SHOWN_METRICS if k in metrics})
        if state == "COMPLETE":
            study.tell(trial, value)
        else:
            study.tell(trial, state=getattr(optuna.trial.TrialState, state))
        return state, value, error

    try:
        trial_cfg = apply_params(cfg, params, output_dir=str(trial_dir))
        with _Heartbeat(trial):
            outcome = run_trial(trial_cfg, data, model=model, trial=trial, pruning=cfg.tuning.pruner != "none")
    except optuna.TrialPruned as exc:
        return finish("PRUNED", error=str(exc) or None)
    except (Text2SQLError, KeyboardInterrupt) as exc:
        # Bad input fails every trial alike, and an interrupt stops the study: record, then stop.
        finish("FAIL", error="interrupted" if isinstance(exc, KeyboardInterrupt) else _one_line(exc), stopped=True)
        if isinstance(exc, Text2SQLError):
            exc.args = (f"trial #{trial.number}: {exc}",)
        raise
    except Exception as exc:  # out of memory, NaN loss (TrialFailed), a library error: this trial only
        log.debug("trial #%d failed", trial.number, exc_info=True)
        return finish("FAIL", error=_one_line(exc))
    finally:
        _free_memory()
    return finish("COMPLETE", outcome.value, metrics=outcome.metrics)


def _eta(durations: list[float], remaining: int, cfg: Config, start: float) -> float | None:
    if not durations or remaining <= 0:
        return 0.0 if remaining <= 0 else None
    eta = sum(durations) / len(durations) * remaining
    if cfg.tuning.timeout is not None:
        eta = min(eta, max(0.0, cfg.tuning.timeout - (time.monotonic() - start)))
    return eta


def apply_params(cfg: Config, params: dict[str, Any], *, output_dir: str | None = None) -> Config:
    """`cfg` with `params` (dotted key → value) set, validated like any config."""
    raw = cfg.to_dict()
    for key, value in params.items():
        set_dotted(raw, key.split("."), value)
    if output_dir is not None:
        raw["output_dir"] = output_dir
    return build_config(raw)


def _run_trials(optuna, study, cfg: Config, space, root: Path, data: Path, model, done: int, say) -> int:
    """Ask for trials and run them until n_trials are claimed across workers or the timeout passes;
    returns how many this process ran."""
    metric, direction, want = cfg.tuning.metric, cfg.tuning.resolved_direction(), cfg.tuning.n_trials
    start = time.monotonic()
    durations: list[float] = []
    ran = 0
    while _claimed(study) < want:  # other workers' trials, finished or running, count too
        if cfg.tuning.timeout is not None and time.monotonic() - start >= cfg.tuning.timeout:
            say(f"timeout: {cfg.tuning.timeout:g} s reached; {done} of {want} trials done (run again to continue)")
            break
        _fail_cut_off(optuna, study, say)  # a worker that died frees its trial for the others
        trial = study.ask()
        trial.set_user_attr("worker", _worker())
        trial.set_user_attr(_HEARTBEAT, time.time())
        if _claimed(study, before=trial.number) >= want:
            # Another worker took the last trial at the same moment: trial numbers decide, so that
            # together the workers run exactly n_trials. The surplus trial is closed unrun.
            trial.set_user_attr(_SURPLUS, True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        params = {key: spec.suggest(trial, key) for key, spec in space.items()}
        began = time.monotonic()
        state, value, error = _run_one(optuna, study, trial, cfg, params, root / f"trial-{trial.number}", data, model)
        durations.append(time.monotonic() - began)
        done = sum(1 for t in study.get_trials(deepcopy=False) if _counts(t))
        ran += 1
        say(
            report.progress_line(
                done,
                want,
                trial.number,
                params,
                state,
                value,
                error,
                durations[-1],
                _best(rows_of(study), direction),
                metric,
                _eta(durations, want - done, cfg, start),
            )
        )
    return ran


def _prepared(cfg: Config, force: bool, say):
    """(the model, its prepared data), refused when the data has no validation rows to score trials on."""
    model = open_model(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code)
    prepared = prepare(cfg, model, force=force)
    val_rows = prepared.report.get("rows_out", {}).get("validation", 0)
    if not val_rows:
        raise ConfigError(
            "text2sql tune scores trials on the validation split and the prepared data has none; "
            "set data.validation or data.validation_size > 0"
        )
    scored = min(val_rows, cfg.evaluation.max_samples or val_rows)
    say(
        f"prepared data {'up to date' if prepared.skipped else 'written'}: {prepared.path} "
        f"(each trial is scored on {scored} validation rows; the test split is not used)"
    )
    return model, prepared
