"""``python -m fishbear <command> ...``: the ``fishbear`` command (:mod:`fishbear.cli`)."""

from fishbear.cli import main

raise SystemExit(main())
