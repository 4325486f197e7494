"""Hyperparameter search with Optuna (`text2sql tune`): a search space over config keys
(`space`), one trial = train + score on the validation split (`trial`), the study loop with
resume and a refusal to mix studies (`study`), and its table, trials.csv and best.yaml (`report`)."""
