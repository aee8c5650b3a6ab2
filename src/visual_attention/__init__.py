"""visual_attention: the code of *Attention in Vision*, one module per attention type.

Every chapter of the book imports this package and shows its code, so what a reader sees is what
the tests check. Start with :mod:`visual_attention.core`.
"""

from .core import (
    AttentionModule,
    masked_softmax,
    query_attention,
    record_attention,
    scaled_dot_product_attention,
)

__all__ = [
    "AttentionModule",
    "masked_softmax",
    "query_attention",
    "record_attention",
    "scaled_dot_product_attention",
]
__version__ = "0.1.0"
