"""Searches and sweeps: the Optuna sweeper behind Hydra's interface and a sweep's summary."""
