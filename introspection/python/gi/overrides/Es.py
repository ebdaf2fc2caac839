# Es.py: PyGObject overrides that make es-glib read naturally in Python.
#
# Installed into PyGObject's overrides directory, it is loaded by
# `from gi.repository import Es`. It adds only conveniences; everything
# the GIR offers works unchanged. The asyncio support (the shared loop,
# awaitable FOO_async calls, async for/async with) lives in
# _es_asyncio.py, next to it; Es.pyi has the type hints.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import datetime
import json

from gi.repository import GLib

from ..module import get_introspection_module
from ..overrides import override
from . import _es_asyncio
from ._es_asyncio import LOOP_INTEGRATION, EventLoopPolicy, GLibEventLoop, new_event_loop

Es = get_introspection_module("Es")

__all__ = ["EventLoopPolicy", "GLibEventLoop", "new_event_loop", "LOOP_INTEGRATION"]


DATA_TYPES = ("bytes, bytearray, memoryview or another bytes-like object, "
              "str (stored as UTF-8), GLib.Bytes or None")


def _to_bytes(data):
    """The GLib.Bytes for a CandidateEvent's data; TypeError for anything else.

    Only bytes-like objects (the buffer protocol) are taken as bytes: bytes()
    would turn an int into that many zero bytes and a list of ints into
    bytes, and fail on a dict with "'str' object cannot be interpreted as
    an integer".
    """
    if data is None or isinstance(data, GLib.Bytes):
        return data
    if isinstance(data, str):
        return GLib.Bytes.new(data.encode("utf-8"))
    try:
        view = memoryview(data)
    except TypeError:
        hint = ""
        if isinstance(data, (dict, list, tuple, int, float, bool)):
            hint = "; to store it as JSON, pass json.dumps(data)"
        raise TypeError("CandidateEvent data must be %s, not %s%s"
                        % (DATA_TYPES, type(data).__name__, hint)) from None
    return GLib.Bytes.new(view.tobytes())


def _to_json(metadata):
    if metadata is None or isinstance(metadata, str):
        return metadata
    return json.dumps(metadata, separators=(",", ":"))


class CandidateEvent(Es.CandidateEvent):
    """An event to append.

    `data` may be bytes, bytearray, memoryview (any bytes-like object), a str
    (encoded as UTF-8) or GLib.Bytes; anything else raises TypeError (a dict
    is not turned into JSON: pass json.dumps(value)). `metadata` may be a
    dict (serialised to JSON) or JSON text.
    """

    def __init__(self, event_type=None, data=None, idempotency_key=None, metadata=None,
                 **kwargs):
        props = dict(kwargs)
        if event_type is not None:
            props["event_type"] = event_type
        if data is not None:
            props["data"] = _to_bytes(data)
        if idempotency_key is not None:
            props["idempotency_key"] = idempotency_key
        if metadata is not None:
            props["metadata"] = _to_json(metadata)
        super().__init__(**props)

    @classmethod
    def new(cls, event_type, data=None):
        """Es.CandidateEvent.new(event_type, data), taking `data` as above."""
        if not isinstance(event_type, str):
            raise TypeError("CandidateEvent event_type must be str, not %s"
                            % type(event_type).__name__)
        return cls(event_type=event_type, data=data)

    def set_metadata(self, metadata):
        super().set_metadata(_to_json(metadata))

    @staticmethod
    def new_batch(event_types, data=None, idempotency_keys=None, metadata=None):
        """A list of new CandidateEvents in one call (since 0.2): the i-th has
        event_types[i], data[i], idempotency_keys[i] and metadata[i].

        `data`, `idempotency_keys` and `metadata` are None or sequences as
        long as `event_types`; their elements are taken as the constructor
        takes them (data: bytes-like, str, GLib.Bytes or None; metadata: a
        dict or JSON text or None; a key None means none). This is the fast
        way to build a batch for Stream.write(): one call into es-glib
        instead of one object construction per event.
        """
        if isinstance(event_types, str):
            raise TypeError("CandidateEvent.new_batch event_types must be a sequence of str, "
                            "not str")
        event_types = list(event_types)
        count = len(event_types)
        for name, column in (("data", data), ("idempotency_keys", idempotency_keys),
                             ("metadata", metadata)):
            if column is not None and len(column) != count:
                raise ValueError("CandidateEvent.new_batch got %d event types but %d %s"
                                 % (count, len(column), name))
        block = lengths = None
        if data is not None:
            block, lengths = _join_payloads(data)
        if metadata is not None:
            metadata = [_to_json(m) for m in metadata]
        return Es.CandidateEvent.new_batch(event_types, block, lengths,
                                           None if idempotency_keys is None
                                           else list(idempotency_keys),
                                           metadata)


def _join_payloads(data):
    """(GLib.Bytes of all payloads one after the other, [length of each])."""
    try:
        # The fast path: every payload is bytes (or bytes-like with 1-byte
        # items), which join takes as they are.
        lengths = [len(d) for d in data]
        block = b"".join(data)
        if len(block) != sum(lengths):
            raise TypeError("not 1-byte items")
    except TypeError:
        payloads = []
        for d in data:
            d = _to_bytes(d)
            payloads.append(d.get_data() or b"" if d is not None else b"")
        lengths = [len(d) for d in payloads]
        block = b"".join(payloads)
    return GLib.Bytes.new(block), lengths


CandidateEvent = override(CandidateEvent)
__all__.append("CandidateEvent")


class StoredEvent(Es.StoredEvent):
    """A persisted event; `data_bytes` and `metadata_dict` are conveniences."""

    @property
    def data_bytes(self):
        return self.get_data().get_data() or b""

    @property
    def metadata_dict(self):
        text = self.get_metadata()
        return json.loads(text) if text is not None else None


StoredEvent = override(StoredEvent)
__all__.append("StoredEvent")


class _Enumerator:
    """Iteration for the enumerators: `for x in enumerator`, `async for`
    (pages of next_batch_async() underneath), and `with` / `async with`,
    which close the enumerator on exit."""

    def __iter__(self):
        return self

    def __next__(self):
        item = self.next(None)
        if item is None:
            raise StopIteration
        return item

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(None)
        return False

    def __aiter__(self):
        return _es_asyncio.EnumeratorIterator(self)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        # Closing releases the buffered page only: nothing to wait for.
        self.close(None)
        return False


class EventEnumerator(_Enumerator, Es.EventEnumerator):
    """Iterable: `for event in stream.read(0, None, None): ...`, and in
    asyncio programs `async for event in enumerator` (pages of
    next_batch_async() underneath). Leaving a `with` or `async with`
    block closes it."""


EventEnumerator = override(EventEnumerator)
__all__.append("EventEnumerator")


class EventCursor(Es.EventCursor):
    """The rows of a read without an object per event (since 0.2).

    `for sequence_id, stream_id, version, event_type, data in cursor:`
    gives each row as a tuple (data as bytes), reading windows of
    ITER_WINDOW rows underneath; `with stream.read_cursor(0, None, None) as
    cursor:` closes it on exit. The fastest is a loop over windows:

        while cursor.next_rows(4096, None):
            types = cursor.dup_event_types()
            block, lengths = cursor.dup_data_joined()
            ...

    (see "From Python" in doc/performance.md). Metadata and idempotency
    keys are not in the tuples: step with next() and use the getters of the
    current row for them.
    """

    ITER_WINDOW = 4096

    def __iter__(self):
        while self.next_rows(self.ITER_WINDOW, None):
            block, lengths = self.dup_data_joined()
            block = block.get_data() or b""
            start = 0
            for row in zip(self.get_sequence_ids(), self.dup_stream_ids(),
                           self.get_versions(), self.dup_event_types(), lengths):
                end = start + row[4]
                yield row[0], row[1], row[2], row[3], block[start:end]
                start = end

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(None)
        return False


EventCursor = override(EventCursor)
__all__.append("EventCursor")


class StreamInfoEnumerator(_Enumerator, Es.StreamInfoEnumerator):
    """Iterable like EventEnumerator:
    `for info in factory.list_streams("cart-", Es.ListStreamsFlags.NONE, None)`,
    `async for info in factory.list_streams_async("cart-", 0)`."""


StreamInfoEnumerator = override(StreamInfoEnumerator)
__all__.append("StreamInfoEnumerator")


class _ClosingFactory:
    """`with Es.SqliteStreamFactory.new(path, None) as factory:` closes it;
    so does `async with` (through close_async())."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(None)
        return False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close_async()
        return False


# Es.SqliteStreamFactory (and any other subclass) inherits this.
class StreamFactory(_ClosingFactory, Es.StreamFactory):
    pass


StreamFactory = override(StreamFactory)
__all__.append("StreamFactory")


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _usec(value):
    """Microseconds since the Unix epoch (UTC) of a GLib.DateTime or a
    datetime.datetime (a naive one is local time, as datetime.timestamp()
    takes it)."""
    if isinstance(value, GLib.DateTime):
        return value.to_unix() * 1000000 + value.get_microsecond()
    if value.tzinfo is None:
        value = value.astimezone()
    return (value - _EPOCH) // datetime.timedelta(microseconds=1)


def _to_date_time(value, what):
    """A GLib.DateTime (or None) from a GLib.DateTime, a datetime.datetime
    or None."""
    if value is None or isinstance(value, GLib.DateTime):
        return value
    if isinstance(value, datetime.datetime):
        seconds, microseconds = divmod(_usec(value), 1000000)
        return GLib.DateTime.new_from_unix_utc(seconds).add(microseconds)
    raise TypeError("EventFilter %s must be GLib.DateTime, datetime.datetime or None, not %s"
                    % (what, type(value).__name__))


def _to_variant(value, what="value"):
    """A filter value as the GVariant es-glib takes: str 's', bool 'b',
    int 'x', float 'd', a time (GLib.DateTime or datetime.datetime) as 'x'
    microseconds since the epoch, or a GLib.Variant as it is."""
    if isinstance(value, GLib.Variant):
        return value
    if isinstance(value, (GLib.DateTime, datetime.datetime)):
        return GLib.Variant("x", _usec(value))
    for python_type, variant_type in ((bool, "b"), (int, "x"), (float, "d"), (str, "s")):
        if isinstance(value, python_type):
            return GLib.Variant(variant_type, value)
    raise TypeError("EventFilter %s must be str, int, float, bool, a time (GLib.DateTime, "
                    "datetime.datetime) or GLib.Variant, not %s"
                    % (what, type(value).__name__))


class EventFilter(Es.EventFilter):
    """Clauses AND-ed together; values may be plain Python values:
    `f.add_equals("event_type", "Increment")`,
    `f.add_in("metadata.region", ["EMEA", "APAC"])`,
    `f.add_compare("metadata.amount", Es.FilterOperator.GREATER, 100)`,
    `f.add_time_range(datetime.now(timezone.utc) - timedelta(hours=1), None)`.
    Times (GLib.DateTime, datetime.datetime) compare with `timestamp` as
    microseconds since the epoch."""

    def add_equals(self, field, value):
        Es.EventFilter.add_equals(self, field, _to_variant(value))

    def add_in(self, field, values):
        if not isinstance(values, GLib.Variant):
            variants = [_to_variant(v, "in value") for v in values]
            types = {v.get_type_string() for v in variants}
            if types == {"x", "d"}:
                variants = [GLib.Variant("d", v.unpack()) for v in variants]
                types = {"d"}
            if len(types) > 1:
                raise TypeError("EventFilter in values must all be of one type, not %s"
                                % ", ".join(sorted(types)))
            element = types.pop() if types else "s"
            values = GLib.Variant("a" + element, [v.unpack() for v in variants])
        Es.EventFilter.add_in(self, field, values)

    def add_compare(self, field, op, value):
        Es.EventFilter.add_compare(self, field, op, _to_variant(value, "compare value"))

    def add_time_range(self, since, until):
        Es.EventFilter.add_time_range(self, _to_date_time(since, "since"),
                                      _to_date_time(until, "until"))


EventFilter = override(EventFilter)
__all__.append("EventFilter")


class Stream(Es.Stream):
    """In asyncio programs, each FOO_async method without a callback is
    awaitable (see below), and `async for event in stream.watch(0)`."""

    def snapshot(self, state, version, projection_name, cancellable):
        """Es.Stream.snapshot(), taking `state` as CandidateEvent takes data
        (bytes, str, GLib.Bytes...)."""
        return Es.Stream.snapshot(self, _to_bytes(state), version, projection_name, cancellable)

    def watch(self, after_version):
        watch = Es.Stream.watch(self, after_version)
        # In a coroutine: queue the events for `async for` from now on.
        _es_asyncio.buffer_watch(watch)
        return watch


Stream = override(Stream)
__all__.append("Stream")


class Watch(Es.Watch):
    """In asyncio programs, `async for event in watch` delivers the watch's
    events (history, then live) until it stops; `async with watch:` stops
    it on exit. A watch made inside a coroutine queues its events for the
    iteration from the start, so the `async for` may begin later."""

    def __aiter__(self):
        return _es_asyncio.watch_iterator(self)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.stop()
        return False


Watch = override(Watch)
__all__.append("Watch")


class Subscription(Es.Subscription):
    """A durable subscription (since 0.2). In asyncio programs:

    `async for event in subscription:` starts it if needed and gives its
    events in order, the loop body being the handler. It needs
    Es.SubscriptionFlags.MANUAL_ACK (asking for the next event acknowledges
    the previous one: at-least-once) or KEEP_STATE (the body calls
    `await subscription.save_state_async(state, subscription.position_of(event))`:
    exactly-once); with the automatic checkpoint (NONE) it raises
    ValueError, since the checkpoint would pass events still queued for the
    body. Leaving the loop stops the subscription.

    `async with subscription:` starts it (start_async()) and stops it on
    exit (stop_async(), which stores the acknowledged checkpoint); `with
    subscription:` does the same through start() and stop().
    """

    def position_of(self, event):
        """The position of `event` in this subscription, as acknowledge()
        and save_state() take it: its sequence id for @all, its version
        for a stream."""
        return _es_asyncio.subscription_position(self, event)

    def start(self, cancellable=None):
        _es_asyncio.starting(self)
        try:
            result = Es.Subscription.start(self, cancellable)
        except Exception as error:
            _es_asyncio.started(self, error)
            raise
        _es_asyncio.started(self)
        return result

    def save_state(self, state, position, cancellable=None):
        """Es.Subscription.save_state(), taking `state` as CandidateEvent
        takes data (bytes, str, GLib.Bytes...)."""
        return Es.Subscription.save_state(self, _to_bytes(state), position, cancellable)

    def __aiter__(self):
        return _es_asyncio.subscription_iterator(self)

    async def __aenter__(self):
        if not self.get_active():
            await self.start_async()
        return self

    async def __aexit__(self, *exc):
        if self.get_active():
            await self.stop_async()
        return False

    def __enter__(self):
        if not self.get_active():
            self.start(None)
        return self

    def __exit__(self, *exc):
        if self.get_active():
            self.stop(None)
        return False


Subscription = override(Subscription)
__all__.append("Subscription")


class SubscriptionInfo(Es.SubscriptionInfo):
    """A stored subscription; `state_bytes` is the state as bytes (None
    when none is stored)."""

    @property
    def state_bytes(self):
        state = self.get_state()
        return state.get_data() if state is not None else None


SubscriptionInfo = override(SubscriptionInfo)
__all__.append("SubscriptionInfo")


# FOO_async without a callback returns an awaitable, for every
# FOO_async/FOO_finish pair of the typelib (see _es_asyncio.py).
__all__.extend(_es_asyncio.install_awaitables(Es, globals(), override, _to_bytes))


# Subscription.start_async, awaitable now: queue the events for `async for`
# before it starts, and hand a failure to the queueing `async for`.
_subscription_start_async = Subscription.start_async


async def _start_and_record(subscription, call):
    try:
        result = await call
    except BaseException as error:
        _es_asyncio.started(subscription, error)
        raise
    _es_asyncio.started(subscription)
    return result


def _start_async(self, *args, **kwargs):
    _es_asyncio.starting(self)
    call = _subscription_start_async(self, *args, **kwargs)
    if not isinstance(call, _es_asyncio.AsyncCall):
        return call  # with a callback: the plain GIO call
    return _es_asyncio.AsyncCall(_start_and_record(self, call))


_start_async.__doc__ = _subscription_start_async.__doc__
Subscription.start_async = _start_async
