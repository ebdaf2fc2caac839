# EsPg.pyi: type hints for what the PyGObject override of EsPg (EsPg.py)
# adds: the awaitable new_async of the PostgreSQL factory. The factory is an
# Es.StreamFactory, with the hints of Es.pyi.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

from typing import Any, Callable, Optional, overload

from gi.repository import Es, Gio
from gi.overrides.Es import AsyncCall

_Cancellable = Optional[Gio.Cancellable]

class StreamFactory(Es.StreamFactory):
    @classmethod
    def new(cls, conninfo: str, cancellable: _Cancellable) -> StreamFactory: ...
    @overload
    @staticmethod
    def new_async(conninfo: str,
                  cancellable: _Cancellable = ...) -> AsyncCall[StreamFactory]: ...
    @overload
    @staticmethod
    def new_async(conninfo: str, cancellable: _Cancellable,
                  callback: Callable[..., None], *user_data: Any) -> None: ...
    @classmethod
    def new_finish(cls, result: Gio.AsyncResult) -> StreamFactory: ...
