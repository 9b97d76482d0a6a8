"""fishbear's Optuna sweeper as a Hydra plugin: Hydra instantiates sweepers only from classes
defined in the ``hydra_plugins`` namespace, so the class is declared here; the work is in
``fishbear.engine.search.sweeper``."""

from fishbear.engine.search import sweeper as search


class OptunaSweeper(search.OptunaSearch):
    """``hydra/sweeper=optuna`` (fishbear/conf/hydra/sweeper/optuna.yaml)."""
