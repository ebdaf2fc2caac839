# _es_asyncio.py: es-glib for asyncio programs.
#
# Part of es-glib's PyGObject override (gi/overrides/Es.py imports it;
# applications use what Es re-exports: Es.EventLoopPolicy,
# Es.new_event_loop and the awaitable *_async methods).
#
# Two pieces:
#
# 1. One loop for GLib and asyncio. es-glib completes its asynchronous
#    calls, and emits its watches' signals, in a GLib main context, so the
#    asyncio loop must dispatch that context. PyGObject >= 3.50 has such a
#    loop (gi.events.GLibEventLoopPolicy); with it, it is used. For older
#    PyGObject (3.42 in Debian 12) GLibEventLoop below is a standard
#    asyncio.SelectorEventLoop whose selector, instead of blocking in
#    epoll_wait(), blocks in g_main_context_iteration(): the epoll file
#    descriptor that holds asyncio's own descriptors is one more GLib
#    source, and asyncio's next timer its timeout. So asyncio's own
#    run_forever() drives both, and asyncio.run(), signals, subprocesses
#    and call_soon_threadsafe() work as on the default loop.
#
# 2. Awaitables derived from the typelib: for every FOO_async method (or
#    static function) that has a FOO_finish twin, calling FOO_async without
#    its callback returns an awaitable instead (the convention PyGObject
#    3.50 adopted for all of GIO). New API gets it without any code here.
#    Cancelling the awaiting asyncio task cancels the operation's
#    GCancellable and waits for the operation's own answer, so the await
#    reports what really happened: CancelledError when it was cancelled
#    (a cancelled write wrote nothing), its result when it completed
#    anyway (a write that committed), or its error.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import collections
import collections.abc
import functools
import selectors
import threading
import typing
import weakref

from gi.repository import Gio, GLib, GObject

try:  # PyGObject >= 3.50
    from gi.events import GLibEventLoop as _PyGObjectLoop
    from gi.events import GLibEventLoopPolicy as _PyGObjectPolicy
except ImportError:  # pragma: no cover (depends on the PyGObject version)
    _PyGObjectLoop = _PyGObjectPolicy = None

__all__ = [
    "GLibEventLoop",
    "EventLoopPolicy",
    "new_event_loop",
    "LOOP_INTEGRATION",
    "install_awaitables",
]

#: How many events an `async for` over an enumerator fetches per
#: next_batch_async() round trip (the library's own read page size).
READ_BATCH = 1024

#: How many events a watch made in a coroutine queues before its
#: `async for` begins; past that the watch is stopped, and the `async for`
#: raises RuntimeError rather than skip events.
WATCH_BACKLOG = 100000


# --------------------------------------------------------------------------
# One loop for GLib and asyncio


class _WakeSource(GLib.Source):
    """A GSource that wakes g_main_context_iteration() for asyncio: when the
    selector's epoll descriptor is readable or asyncio's next timer is due.
    Its dispatch does nothing: asyncio handles the events after the
    iteration returns."""

    def __init__(self, fd):
        super().__init__()
        self.set_name("es-glib asyncio")
        self.deadline = -1  # monotonic µs, -1: none
        self._tag = self.add_unix_fd(fd, GLib.IOCondition.IN)

    def prepare(self):
        if self.deadline < 0:
            return False, -1
        remaining = self.deadline - GLib.get_monotonic_time()
        if remaining <= 0:
            return True, 0
        return False, (remaining + 999) // 1000

    def check(self):
        if self.query_unix_fd(self._tag) & GLib.IOCondition.IN:
            return True
        return 0 <= self.deadline <= GLib.get_monotonic_time()

    def dispatch(self, callback, args):
        return GLib.SOURCE_CONTINUE


class _GLibSelector(selectors.BaseSelector):
    """asyncio's selector (epoll), waited on through the GLib main context."""

    def __init__(self, context):
        self._selector = selectors.DefaultSelector()
        if not hasattr(self._selector, "fileno"):
            raise RuntimeError("es-glib's asyncio loop needs a selector with a file "
                               "descriptor (epoll, kqueue or devpoll), not %s"
                               % type(self._selector).__name__)
        self._context = context
        self._source = _WakeSource(self._selector.fileno())
        self._source.attach(context)

    def register(self, fileobj, events, data=None):
        return self._selector.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._selector.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._selector.modify(fileobj, events, data)

    def get_key(self, fileobj):
        return self._selector.get_key(fileobj)

    def get_map(self):
        return self._selector.get_map()

    def select(self, timeout=None):
        # asyncio asks to wait up to `timeout` seconds (None: forever, 0:
        # not at all). GLib waits instead, dispatching its own sources
        # (es-glib's completions and signals) meanwhile; then asyncio's
        # descriptors are collected without waiting.
        if timeout is not None and timeout <= 0:
            self._context.iteration(False)
        else:
            if timeout is not None:
                self._source.deadline = GLib.get_monotonic_time() + int(timeout * 1e6)
            try:
                self._context.iteration(True)
            finally:
                self._source.deadline = -1
        return self._selector.select(0)

    def close(self):
        if self._source is not None:
            self._source.destroy()
            self._source = None
        self._selector.close()


class GLibEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop that also dispatches a GLib main context.

    `context` is the GLib.MainContext to dispatch. By default: in the main
    thread, the thread-default context (normally the global default one,
    where GLib.idle_add() and GLib.timeout_add() attach their callbacks);
    in another thread, a new context, which the loop makes the thread's
    default while it runs, so es-glib calls made from the loop complete
    in it.
    """

    def __init__(self, context: typing.Optional[GLib.MainContext] = None):
        if context is None:
            if threading.current_thread() is threading.main_thread():
                context = GLib.MainContext.ref_thread_default()
            else:
                context = GLib.MainContext.new()
        self._glib_context = context
        super().__init__(_GLibSelector(context))

    @property
    def glib_context(self) -> GLib.MainContext:
        """The GLib.MainContext this loop dispatches."""
        return self._glib_context

    def run_forever(self):
        # GTask callbacks and watch signals go to the thread-default
        # context of the thread that starts them: make it ours.
        current = GLib.MainContext.ref_thread_default()
        push = hash(current) != hash(self._glib_context)
        if push:
            self._glib_context.push_thread_default()
        try:
            super().run_forever()
        finally:
            if push:
                self._glib_context.pop_thread_default()


class _OwnEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops also dispatch GLib."""

    def new_event_loop(self):
        return GLibEventLoop()


if _PyGObjectPolicy is not None:  # pragma: no cover (PyGObject >= 3.50)
    EventLoopPolicy = _PyGObjectPolicy
    LOOP_INTEGRATION = "gi.events"

    def new_event_loop() -> asyncio.AbstractEventLoop:
        """A new asyncio event loop that also dispatches GLib (PyGObject's own)."""
        return _PyGObjectPolicy().new_event_loop()
else:
    EventLoopPolicy = _OwnEventLoopPolicy
    LOOP_INTEGRATION = "es-glib"

    def new_event_loop() -> asyncio.AbstractEventLoop:
        """A new asyncio event loop that also dispatches GLib (es-glib's own)."""
        return GLibEventLoop()


_LOOP_TYPES = tuple(t for t in (GLibEventLoop, _PyGObjectLoop) if t is not None)

_NEEDS_GLIB_LOOP = (
    "es-glib's awaitables need an asyncio event loop that also runs GLib's main "
    "context, and the running loop is a %s: call "
    "asyncio.set_event_loop_policy(Es.EventLoopPolicy()) before asyncio.run(), or "
    "use asyncio.run(main(), loop_factory=Es.new_event_loop) (Python 3.12) or "
    "asyncio.Runner(loop_factory=Es.new_event_loop)")


def _running_glib_loop():
    loop = asyncio.get_running_loop()
    if not isinstance(loop, _LOOP_TYPES):
        raise RuntimeError(_NEEDS_GLIB_LOOP % type(loop).__name__)
    return loop


def _call_in_loop(loop, function, *args):
    """Calls function(*args) in the loop's thread: now when this is it.
    Once the loop is closed there is nobody to tell."""
    if loop._thread_id == threading.get_ident():
        function(*args)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(function, *args)


# --------------------------------------------------------------------------
# Awaitable operations


def _is_cancelled(error):
    return (isinstance(error, GLib.Error)
            and error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))


def _settle(future, finish, result):
    if future.done():  # the loop was closed under it
        return
    try:
        value = finish(result)
    except Exception as error:
        future.set_exception(error)
    else:
        future.set_result(value)


async def _run(start, finish, cancellable):
    """Starts an operation with start(cancellable, callback) and returns
    what finish(result) returns, or raises what it raises.

    Cancelling the awaiting task cancels the operation's GCancellable and
    waits for the operation to say how it ended: cancelled (nothing done)
    raises CancelledError; a result or another error, which means the
    operation was past the point where it could stop, is returned or
    raised as usual (as asyncio.wait_for() does for a finished inner
    future). Further cancellation requests while waiting change nothing.
    """
    loop = _running_glib_loop()
    future = loop.create_future()
    own = Gio.Cancellable.new()
    linked = 0
    if cancellable is not None:
        linked = GObject.Object.connect(cancellable, "cancelled", lambda _c: own.cancel())
        if cancellable.is_cancelled():
            own.cancel()

    def callback(_source, result, *_user_data):
        _call_in_loop(loop, _settle, future, finish, result)

    try:
        start(own, callback)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Finished before the cancellation reached it.
                return future.result()
            own.cancel()
            while not future.done():
                try:
                    await asyncio.wait((future,))
                except asyncio.CancelledError:
                    pass
            if future.cancelled() or _is_cancelled(future.exception()):
                raise
            return future.result()
    finally:
        if linked:
            GObject.Object.disconnect(cancellable, linked)


class AsyncCall(collections.abc.Coroutine):
    """What an es-glib FOO_async method returns when called without a
    callback: a coroutine (await it, or hand it to asyncio.create_task()
    or asyncio.gather()) that starts the operation when first awaited.

    When the operation's result is an asynchronous context manager or
    iterable, so is the call itself:
    `async with Es.SqliteStreamFactory.new_async(path) as factory:` and
    `async for event in stream.read_async(0):` (which closes the
    enumerator at the end).
    """

    __slots__ = ("_coro", "_entered")

    def __init__(self, coro):
        self._coro = coro
        self._entered = None

    def __await__(self):
        return self._coro.__await__()

    def send(self, value):
        return self._coro.send(value)

    def throw(self, *args):
        return self._coro.throw(*args)

    def close(self):
        return self._coro.close()

    def __repr__(self):
        return "<es-glib %s>" % self._coro.__qualname__

    async def __aenter__(self):
        value = await self._coro
        if not hasattr(value, "__aenter__"):
            raise TypeError("%s is not an asynchronous context manager"
                            % type(value).__name__)
        self._entered = value
        return await value.__aenter__()

    async def __aexit__(self, *exc_info):
        entered, self._entered = self._entered, None
        return await entered.__aexit__(*exc_info)

    def __aiter__(self):
        return _ResultIterator(self._coro)


class _ResultIterator:
    """`async for x in call`: awaits the call, iterates its result, and
    closes the result (an enumerator) when the iteration ends."""

    __slots__ = ("_coro", "_owner", "_iterator")

    def __init__(self, coro):
        self._coro = coro
        self._owner = None
        self._iterator = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._iterator is None:
            if self._coro is None:
                raise StopAsyncIteration
            coro, self._coro = self._coro, None
            self._owner = await coro
            self._iterator = self._owner.__aiter__()
        try:
            return await self._iterator.__anext__()
        except BaseException:
            self._done()
            raise

    def _done(self):
        owner, self._owner = self._owner, None
        if owner is not None and hasattr(owner, "close") and hasattr(owner, "is_closed"):
            if not owner.is_closed():
                owner.close(None)

    def __del__(self):
        # `break` out of the loop: the enumerator is released with us.
        self._done()


class _AsyncPair(typing.NamedTuple):
    async_name: str
    finish_name: str
    is_method: bool
    n_visible: int        # Python-visible arguments before the callback
    cancellable_index: int  # among them, or -1
    n_required: int       # those before the first of the trailing nullable ones
    bytes_indexes: tuple  # those that take a GLib.Bytes


def _visible_arguments(function_info):
    """The arguments Python passes, in order, as (name, arg_info): without
    array lengths, user_data closures and destroy notifies."""
    arguments = function_info.get_arguments()
    hidden = set()
    for argument in arguments:
        type_info = argument.get_type()
        if type_info.get_array_length() >= 0:
            hidden.add(type_info.get_array_length())
        if argument.get_closure() >= 0:
            hidden.add(argument.get_closure())
        if argument.get_destroy() >= 0:
            hidden.add(argument.get_destroy())
    return [(argument.get_name(), argument)
            for index, argument in enumerate(arguments) if index not in hidden]


def _interface_name(argument):
    type_info = argument.get_type()
    if type_info.get_tag_as_string() != "interface":
        return None
    interface = type_info.get_interface()
    return "%s.%s" % (interface.get_namespace(), interface.get_name())


def _async_pairs(info):
    """The FOO_async/FOO_finish pairs among the methods of a GI object or
    interface info whose last visible argument is a GAsyncReadyCallback."""
    methods = {m.get_name(): m for m in info.get_methods()}
    pairs = []
    for name, method in methods.items():
        if not name.endswith("_async"):
            continue
        finish_name = name[:-len("_async")] + "_finish"
        if finish_name not in methods:
            continue
        visible = _visible_arguments(method)
        if not visible or _interface_name(visible[-1][1]) != "Gio.AsyncReadyCallback":
            continue
        before = visible[:-1]
        cancellable_index = -1
        n_required = 0
        bytes_indexes = []
        for index, (_name, argument) in enumerate(before):
            if _interface_name(argument) == "Gio.Cancellable":
                cancellable_index = index
            elif not argument.may_be_null():
                n_required = index + 1
            if _interface_name(argument) == "GLib.Bytes":
                bytes_indexes.append(index)
        pairs.append(_AsyncPair(name, finish_name, method.is_method(), len(before),
                                cancellable_index, n_required, tuple(bytes_indexes)))
    return pairs


def _make_awaitable(cls, pair, original, to_bytes):
    """FOO_async(args...) for class cls: with its callback, the original
    call; without, an AsyncCall. GLib.Bytes arguments may be given as
    bytes, str and the like (to_bytes converts them)."""
    n_visible = pair.n_visible
    cancellable_index = pair.cancellable_index
    n_required = pair.n_required
    n_before = cancellable_index if cancellable_index >= 0 else n_visible

    def split(args, kwargs):
        """(arguments before the callback, the cancellable) or None when
        the caller passes a callback (the plain GIO call)."""
        if len(args) > n_visible or "callback" in kwargs:
            return None
        args = list(args)
        cancellable = kwargs.pop("cancellable", None)
        if cancellable_index >= 0 and len(args) > cancellable_index:
            cancellable = args[cancellable_index]
        if kwargs:
            raise TypeError("%s() got unexpected keyword arguments: %s"
                            % (pair.async_name, ", ".join(sorted(kwargs))))
        del args[n_before:]
        if len(args) < n_required:
            raise TypeError("%s() takes at least %d arguments before the cancellable, "
                            "%d given" % (pair.async_name, n_required, len(args)))
        # Trailing nullable arguments (a filter, a projection name) may be
        # left out.
        args.extend([None] * (n_before - len(args)))
        for index in pair.bytes_indexes:
            args[index] = to_bytes(args[index])
        return args, cancellable

    if pair.is_method:
        @functools.wraps(original)
        def method(self, *args, **kwargs):
            plain = split(args, dict(kwargs))
            if plain is None:
                return original(self, *args, **kwargs)
            arguments, cancellable = plain
            finish = getattr(self, pair.finish_name)

            def start(own, callback):
                original(self, *arguments, own, callback=callback)

            return AsyncCall(_run(start, finish, cancellable))

        method.__doc__ = _awaitable_doc(pair, original)
        return method

    @functools.wraps(original)
    def function(*args, **kwargs):
        plain = split(args, dict(kwargs))
        if plain is None:
            return original(*args, **kwargs)
        arguments, cancellable = plain
        finish = getattr(cls, pair.finish_name)

        def start(own, callback):
            original(*arguments, own, callback=callback)

        return AsyncCall(_run(start, finish, cancellable))

    function.__doc__ = _awaitable_doc(pair, original)
    return staticmethod(function)


def _awaitable_doc(pair, original):
    return ("%s\n\nWithout a callback, returns an awaitable (es-glib's asyncio support): "
            "`await obj.%s(...)` gives what %s() returns or raises its GLib.Error; the "
            "cancellable may be left out, and cancelling the awaiting task cancels the "
            "operation." % (original.__doc__ or pair.async_name, pair.async_name,
                            pair.finish_name))


def install_awaitables(namespace_module, override_module_globals, override, to_bytes):
    """Adds the awaitable FOO_async to every class and interface of the
    namespace that has FOO_async/FOO_finish pairs. Classes the override
    module already overrides get the methods; the others get an override
    class made here. Returns the names of the new override classes."""
    import gi._gi as _gi

    repository = _gi.Repository.get_default()
    namespace = namespace_module._namespace
    created = []
    infos = [info for info in repository.get_infos(namespace)
             if isinstance(info, (_gi.ObjectInfo, _gi.InterfaceInfo))]
    # Parents before children, so that a child's class, created by
    # PyGObject on first use, derives from its parent's override.
    infos.sort(key=lambda info: _depth(info))
    for info in infos:
        pairs = _async_pairs(info)
        if not pairs:
            continue
        name = info.get_name()
        base = getattr(namespace_module, name)
        cls = override_module_globals.get(name)
        if cls is None or not issubclass(cls, base):
            cls = type(name, (base,), {"__module__": override_module_globals["__name__"],
                                       "__doc__": base.__doc__})
            cls = override(cls)
            override_module_globals[name] = cls
            created.append(name)
        for pair in pairs:
            original = getattr(base, pair.async_name)
            setattr(cls, pair.async_name, _make_awaitable(cls, pair, original, to_bytes))
    return created


def _depth(info):
    depth = 0
    get_parent = getattr(info, "get_parent", None)
    parent = get_parent() if get_parent else None
    while parent is not None:
        depth += 1
        parent = parent.get_parent()
    return depth


# --------------------------------------------------------------------------
# Async iteration


class EnumeratorIterator:
    """`async for event in enumerator`: fetches READ_BATCH events per
    next_batch_async() and hands them out one by one."""

    __slots__ = ("_enumerator", "_page", "_batch", "_ended")

    def __init__(self, enumerator, batch=READ_BATCH):
        self._enumerator = enumerator
        self._page = collections.deque()
        self._batch = batch
        self._ended = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self._page:
            if self._ended:
                raise StopAsyncIteration
            page = await self._enumerator.next_batch_async(self._batch)
            if not page:
                self._ended = True
                raise StopAsyncIteration
            self._page.extend(page)
        return self._page.popleft()


def buffer_watch(watch):
    """Called on every watch Es.Stream.watch() returns. Inside a coroutine
    (a GLib asyncio loop running in this thread), the watch's events are
    queued for `async for` from now on, so that none emitted before the
    iteration starts (while the program awaits something else) is lost."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if isinstance(loop, _LOOP_TYPES):
        watch._es_iterator = WatchIterator(watch)


def watch_iterator(watch):
    """The iterator for `async for event in watch`: the one buffering since
    the watch was made (the first time), else a new one."""
    iterator = watch.__dict__.pop("_es_iterator", None)
    if iterator is not None:
        if iterator._overflowed:
            raise RuntimeError("The watch on '%s' emitted more than %d events before its "
                               "async for began; they were dropped. Begin iterating sooner."
                               % (watch.get_stream_id(), WATCH_BACKLOG))
        iterator._claimed = True
        if iterator._handlers is not None:
            return iterator
    iterator = WatchIterator(watch)
    iterator._claimed = True
    return iterator


class WatchIterator:
    """`async for event in watch`: the watch's events, in order.

    Ends (StopAsyncIteration) once the watch is stopped, by
    watch.stop() or by closing the factory; raises the GLib.Error of the
    watch's ::error signal after the events emitted before it. Events the
    watch emitted while nobody awaited wait in a queue. Leaving the loop
    (break, an exception, a cancelled task) stops the watch.
    """

    def __init__(self, watch):
        self._loop = _running_glib_loop()
        self._watch = watch
        self._queue = collections.deque()
        self._error = None
        self._stopped = False
        self._waiter = None
        self._claimed = False      # an async for took it
        self._overflowed = False   # dropped events before it did
        # The handlers hold the iterator weakly: a watch whose iterator is
        # gone must not keep it (and its queue) alive.
        ref = _WeakMethodRef(self)
        self._handlers = [
            watch.connect("event", ref.on_event),
            watch.connect("error", ref.on_error),
            watch.connect("notify::active", ref.on_active),
        ]
        if not watch.get_active():
            self._stopped = True

    def __aiter__(self):
        return self

    def _wake(self):
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_event(self, event):
        if not self._claimed and len(self._queue) >= WATCH_BACKLOG:
            self._overflowed = True
            self._finish()
            return
        self._queue.append(event)
        self._wake()

    def _on_error(self, error):
        self._error = error
        self._wake()

    def _on_active(self):
        if not self._watch.get_active():
            self._stopped = True
            self._wake()

    async def __anext__(self):
        while True:
            if self._stopped and self._error is None:
                self._finish()
                raise StopAsyncIteration
            if self._queue:
                return self._queue.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                self._stopped = True
                self._finish()
                raise error
            if self._handlers is None:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except BaseException:
                self._finish()
                raise
            finally:
                self._waiter = None

    def _finish(self):
        handlers, self._handlers = self._handlers, None
        self._queue.clear()
        if handlers:
            for handler in handlers:
                self._watch.disconnect(handler)
            # Leaving the loop ends the watch, as leaving a generator ends
            # it. Through stop(), a GI call that releases the GIL: if the
            # last reference went with the GIL held, the watch's dispose
            # would wait for the notifier thread, which may be waiting for
            # the GIL to finalize an event Python has seen.
            self._watch.stop()

    def __del__(self):
        if getattr(self, "_handlers", None):
            self._finish()


class _WeakMethodRef:
    """Signal handlers that reach a WatchIterator through a weak reference,
    from whichever thread emits (notify::active may come from the thread
    that calls stop())."""

    def __init__(self, iterator):
        import weakref
        self._ref = weakref.ref(iterator)
        self._loop = iterator._loop

    def _call(self, name, *args):
        iterator = self._ref()
        if iterator is not None:
            getattr(iterator, name)(*args)

    def on_event(self, _watch, event):
        _call_in_loop(self._loop, self._call, "_on_event", event)

    def on_error(self, _watch, error):
        _call_in_loop(self._loop, self._call, "_on_error", error)

    def on_active(self, _watch, _pspec):
        _call_in_loop(self._loop, self._call, "_on_active")


# --------------------------------------------------------------------------
# Durable subscriptions (since 0.2)

#: How many events a subscription started in a coroutine queues before its
#: `async for` begins; past that the queue is dropped and the `async for`
#: raises RuntimeError rather than acknowledge past events it never gave.
SUBSCRIPTION_BACKLOG = 100000


def subscription_position(subscription, event):
    """The position of an event in a subscription: its sequence id for
    @all, its version for a stream."""
    if subscription.get_stream_id() == "@all":
        return event.get_sequence_id()
    return event.get_version()


def _subscription_flags(subscription):
    # Local import: Es is the override module that imports this one.
    from gi.repository import Es
    flags = subscription.get_flags()
    return (bool(flags & Es.SubscriptionFlags.MANUAL_ACK),
            bool(flags & Es.SubscriptionFlags.KEEP_STATE))


_NEEDS_ACK_MODE = (
    "async for over the subscription '%s' needs Es.SubscriptionFlags.MANUAL_ACK "
    "(the loop body acknowledges each event by asking for the next) or "
    "Es.SubscriptionFlags.KEEP_STATE (the body calls save_state): with the "
    "automatic checkpoint the position would move past an event as soon as it "
    "is queued, before the body has run, and a crash would skip it")


def buffer_subscription(subscription):
    """Called before a subscription starts. Inside a coroutine (a GLib
    asyncio loop running in this thread), its events are queued for
    `async for` from the start, so that none delivered while the program
    awaits something else is missed (and then acknowledged past)."""
    if subscription.__dict__.get("_es_iterator") is not None:
        return
    if subscription.__dict__.get("_es_own_start"):
        return  # an `async for` starting it: its iterator is there already
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if not isinstance(loop, _LOOP_TYPES):
        return
    manual_ack, keep_state = _subscription_flags(subscription)
    if manual_ack or keep_state:
        subscription._es_iterator = SubscriptionIterator(subscription)


def subscription_iterator(subscription):
    """The iterator for `async for event in subscription`: the one queueing
    since the subscription started in a coroutine, else a new one. Refuses
    the automatic checkpoint mode, and a subscription that delivered events
    nobody queued."""
    manual_ack, keep_state = _subscription_flags(subscription)
    if not (manual_ack or keep_state):
        raise ValueError(_NEEDS_ACK_MODE % subscription.get_name())
    iterator = subscription.__dict__.pop("_es_iterator", None)
    if iterator is not None:
        if iterator._overflowed:
            raise RuntimeError("The subscription '%s' delivered more than %d events before "
                               "its async for began; they were dropped. Begin iterating "
                               "sooner." % (subscription.get_name(), SUBSCRIPTION_BACKLOG))
        if iterator._handlers is not None or not subscription.get_active():
            iterator._claimed = True
            subscription._es_claimed = weakref.ref(iterator)
            return iterator
    if subscription.get_active() and subscription.get_position() != subscription.get_checkpoint():
        # Delivered to nobody: acknowledging a later event would skip them.
        raise RuntimeError("The subscription '%s' was started outside a coroutine and has "
                           "delivered events already (position %d, checkpoint %d): start it "
                           "with async for, async with or start_async() in the coroutine "
                           "that iterates it" % (subscription.get_name(),
                                                 subscription.get_position(),
                                                 subscription.get_checkpoint()))
    iterator = SubscriptionIterator(subscription)
    iterator._claimed = True
    return iterator


class SubscriptionIterator:
    """`async for event in subscription`: its events, in order, with the
    loop body as the handler.

    Starts the subscription (start_async()) when it is not active. With
    Es.SubscriptionFlags.MANUAL_ACK, asking for the next event acknowledges
    the previous one: an event is acknowledged only once the body that
    received it has finished (at-least-once; an event whose body raised, or
    that was the last before a break, comes again after a restart). With
    KEEP_STATE nothing is acknowledged: the body calls save_state(). Ends
    (StopAsyncIteration) once the subscription is stopped (stop(), factory
    close); raises the GLib.Error of its ::error signal at once (it is then
    stopped; the events queued and not yet given come again on the next
    start). Leaving the loop (break, an exception, a cancelled task) stops
    the subscription, which stores the acknowledged checkpoint.
    """

    def __init__(self, subscription):
        self._loop = _running_glib_loop()
        self._subscription = subscription
        self._manual_ack, _keep_state = _subscription_flags(subscription)
        self._queue = collections.deque()
        self._error = None
        self._stopped = False
        self._active_seen = subscription.get_active()
        self._unacknowledged = None  # the position of the event last given
        self._waiter = None
        self._claimed = False
        self._overflowed = False
        ref = _WeakMethodRef(self)
        self._handlers = [
            subscription.connect("event", ref.on_event),
            subscription.connect("error", ref.on_error),
            subscription.connect("notify::active", ref.on_active),
        ]

    def __aiter__(self):
        return self

    def _wake(self):
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_event(self, event):
        if not self._claimed and len(self._queue) >= SUBSCRIPTION_BACKLOG:
            self._overflowed = True
            self._disconnect()
            return
        self._queue.append(event)
        self._wake()

    def _on_error(self, error):
        self._error = error
        self._wake()

    def _on_active(self):
        if self._subscription.get_active():
            self._active_seen = True
        elif self._active_seen:
            self._stopped = True
            self._wake()

    def _on_start_failed(self, error):
        """The start() or start_async() that this iterator queues for
        failed: the `async for` raises its error."""
        self._error = error
        self._wake()

    def _acknowledge(self):
        position, self._unacknowledged = self._unacknowledged, None
        if (position is not None and self._manual_ack
                and self._subscription.get_active()):
            self._subscription.acknowledge(position)

    async def __anext__(self):
        # The body for the previous event has returned: it is handled.
        self._acknowledge()
        subscription = self._subscription
        if self._handlers is not None and not subscription.get_active() and self._error is None:
            state = subscription.__dict__
            if not state.get("_es_start_called"):
                # Never started: start it here.
                state["_es_start_called"] = state["_es_own_start"] = True
                self._active_seen = True
                try:
                    await subscription.start_async()
                except BaseException:
                    self._finish()
                    raise
            elif not state.get("_es_starting") and not self._active_seen:
                # Started and stopped before this loop began.
                self._stopped = True
        while True:
            if self._error is not None:
                error, self._error = self._error, None
                self._finish()
                raise error
            if self._stopped:
                self._finish()
                raise StopAsyncIteration
            if self._queue:
                event = self._queue.popleft()
                self._unacknowledged = subscription_position(self._subscription, event)
                return event
            if self._handlers is None:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except BaseException:
                self._finish()
                raise
            finally:
                self._waiter = None

    def _disconnect(self):
        handlers, self._handlers = self._handlers, None
        self._queue.clear()
        if handlers:
            for handler in handlers:
                self._subscription.disconnect(handler)
        return bool(handlers)

    def _finish(self):
        if self._disconnect() and self._subscription.get_active():
            # Leaving the loop ends the subscription (as leaving a
            # generator ends it); stop() stores what was acknowledged, and
            # releases the GIL while it waits for the storage.
            self._subscription.stop(None)

    def __del__(self):
        if getattr(self, "_handlers", None):
            self._finish()


def starting(subscription):
    """Called by the start()/start_async() overrides before the C call:
    queues the events for `async for` (see buffer_subscription) and
    records that a start is under way."""
    buffer_subscription(subscription)
    state = subscription.__dict__
    state["_es_start_called"] = state["_es_starting"] = True


def started(subscription, error=None):
    """Called by the start()/start_async() overrides once the C call
    returned: on failure, a queueing `async for` raises the error."""
    subscription.__dict__["_es_starting"] = False
    if error is not None:
        iterator = subscription.__dict__.get("_es_iterator")
        if iterator is None and subscription.__dict__.get("_es_claimed") is not None:
            iterator = subscription.__dict__["_es_claimed"]()
        if iterator is not None:
            iterator._on_start_failed(error)
