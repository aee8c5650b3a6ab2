"""Widgets, plots and diagrams: how the book shows attention, never imported by a paper module.

* :mod:`visual_attention.views.widgets` — the explorers: precomputed views switched in the browser,
  and :class:`~visual_attention.views.widgets.AttentionExplorer`, which computes attention in the
  reader's browser (``static/attention_explorer.js``).
* :mod:`visual_attention.views.browser_model` — a trained PyTorch model exported as a graph of ATen
  operations that ``static/model_runtime.js`` runs in the reader's browser.
* :mod:`visual_attention.views.model_explorer` — such a model on any digit the reader draws: its
  attention maps over the input, its prediction, the attention inside the ink's box.
* :mod:`visual_attention.views.viz` — colour maps, data URIs, the HTML views and matplotlib plots.
* :mod:`visual_attention.views.diagrams` — the graphviz flowchart of the attention steps.
"""
