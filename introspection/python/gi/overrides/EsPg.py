# EsPg.py: the PyGObject override of EsPg, the PostgreSQL backend of
# es-glib (libes-glib-pg-1.0). It only makes the asyncio support of the Es
# override (the shared loop, awaitable FOO_async calls, see _es_asyncio.py)
# cover EsPg's async pairs too, so that
#     async with EsPg.StreamFactory.new_async(conninfo) as factory: ...
# works as it does for Es.SqliteStreamFactory. The factory it returns is an
# Es.StreamFactory, with all of the Es override.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

from ..module import get_introspection_module
from ..overrides import override

from . import _es_asyncio
from .Es import _to_bytes

EsPg = get_introspection_module("EsPg")

__all__ = []

__all__.extend(_es_asyncio.install_awaitables(EsPg, globals(), override, _to_bytes))
