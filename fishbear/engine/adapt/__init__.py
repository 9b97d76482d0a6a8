"""``fishbear adapt``: a trained model fitted to new footage of the same camera without its labels
(a new day's colour, a moved camera): :mod:`~fishbear.engine.adapt.footage` reads the footage,
:mod:`~fishbear.engine.adapt.methods` holds the ways to adapt, and
:mod:`~fishbear.engine.adapt.adapted` writes the adapted checkpoint beside nothing of the source's."""
