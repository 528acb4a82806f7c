"""The module model's invariants, in one place: what the decoder and the artifact loader check.

The rule functions (``memory_limits``, ``table_limits``, ``table_init``, ``tag_type``,
``start_func_type``, ``const_expr``; :mod:`.rules`) are called by the decoder on what it
reads (it turns :class:`Invalid` into a :class:`~wasmenv.DecodeError` at the byte offset)
and by :func:`check_translation` (:mod:`.translation`), which checks a whole
:class:`ModuleTranslation` built by anyone else (an artifact's metadata, a hand-built one):
that one reports the field's path.
"""
from .rules import (MAX_ALIGN, MAX_TYPE_DEPTH, Invalid, const_expr, memory_limits, start_func_type,
                    table_init, table_limits, tag_type)
from .translation import check_module, check_translation

# Not API, but imported through this package (wasmenv.artifact, the decoder): explicit re-exports.
from .rules import U32 as U32, U64 as U64, func_type as func_type, is_pow2 as is_pow2
from .rules import value_type as value_type
from .translation import Chunks as Chunks

__all__ = ["Invalid", "check_translation", "check_module", "memory_limits", "table_limits", "table_init",
           "tag_type", "start_func_type", "const_expr", "MAX_ALIGN", "MAX_TYPE_DEPTH"]
