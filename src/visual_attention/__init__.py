"""visual_attention: the code of *Attention in Vision*, one module per attention type.

Every chapter of the book imports this package and shows its code, so what a reader sees is what
the tests check. Start with :mod:`visual_attention.core`.
"""

from .core import masked_softmax, query_attention, scaled_dot_product_attention

__all__ = ["masked_softmax", "query_attention", "scaled_dot_product_attention"]
__version__ = "0.1.0"
