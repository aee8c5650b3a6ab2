"""Each chapter's lab: its tasks, toy networks, training recipes and widget builders.

``labs/<chapter>.py`` holds what one chapter of the book builds *around* the papers' modules — the
small networks of its experiments, the synthetic tasks, the explorers it shows — so that the paper
modules (:mod:`visual_attention.spatial`, :mod:`visual_attention.channel`, …) hold the papers' code
only. Labs may import everything below them: paper modules, :mod:`visual_attention.data`,
:mod:`visual_attention.train` and :mod:`visual_attention.views`; nothing in the package imports a
lab except the exercises.

A chapter's lab is that chapter's alone: no chapter lab imports another. What several share sits
on a floor of its own: :mod:`~visual_attention.labs.common` (the frozen encoder's features, their
standardisation, the page models' base class, attention over a data set, peak memory) on top of
:mod:`~visual_attention.labs.digits` (the frozen digit encoder and its weights) and
``labs._checks`` (the input checks only labs need). Both rules are import-linter contracts of
``make lint``.
"""
