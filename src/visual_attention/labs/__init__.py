"""Each chapter's lab: its tasks, toy networks, training recipes and widget builders.

``labs/<chapter>.py`` holds what one chapter of the book builds *around* the papers' modules — the
small networks of its experiments, the synthetic tasks, the explorers it shows — so that the paper
modules (:mod:`visual_attention.spatial`, :mod:`visual_attention.channel`, …) hold the papers' code
only. Labs may import everything below them: paper modules, :mod:`visual_attention.data`,
:mod:`visual_attention.train` and :mod:`visual_attention.views`; nothing in the package imports a
lab except the exercises.
"""
