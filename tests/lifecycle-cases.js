// lifecycle-cases.js: the stream life cycle (issue 16) from GJS, for every
// backend, with async/await.
//
// lifecycleTests(env) returns the tests as an object of async functions;
// tests/test-es.js runs them on SQLite and tests/postgres/test-pg.js on
// PostgreSQL. env.newFactory() gives a factory on a fresh, empty database,
// env.secondFactory(factory) another factory on the same database (as
// another process would open it), env.cleanup(factory) closes the first and
// removes the database. Each test checks what is stored after each
// operation. The callables used here count for
// tests/bindings/check-coverage.py (this file is among its --gjs files).
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import Es from 'gi://Es?version=1.0';
import {promisifyAll} from '../introspection/gjs/es-async.js';

// The GJS helper: every pair awaitable, both enumerators async-iterable.
// The pairs are also named one by one, as an application without the
// helper would (GJS skips a pair promisified already).
promisifyAll(Es);
Gio._promisify(Es.StreamFactory.prototype, 'list_streams_async', 'list_streams_finish');
Gio._promisify(Es.StreamFactory.prototype, 'get_stream_info_async', 'get_stream_info_finish');
Gio._promisify(Es.StreamFactory.prototype, 'delete_stream_async', 'delete_stream_finish');
Gio._promisify(Es.StreamFactory.prototype, 'truncate_stream_async', 'truncate_stream_finish');
Gio._promisify(Es.StreamFactory.prototype, 'erase_event_async', 'erase_event_finish');
Gio._promisify(Es.StreamFactory.prototype, 'set_retention_async', 'set_retention_finish');
Gio._promisify(Es.StreamFactory.prototype, 'sweep_async', 'sweep_finish');
Gio._promisify(Es.StreamFactory.prototype, 'compact_async', 'compact_finish');
Gio._promisify(Es.StreamFactory.prototype, 'add_metadata_index_async',
    'add_metadata_index_finish');
Gio._promisify(Es.StreamFactory.prototype, 'remove_metadata_index_async',
    'remove_metadata_index_finish');
Gio._promisify(Es.StreamFactory.prototype, 'list_metadata_indexes_async',
    'list_metadata_indexes_finish');
Gio._promisify(Es.StreamInfoEnumerator.prototype, 'next_batch_async', 'next_batch_finish');
Gio._promisify(Es.Stream.prototype, 'read_backwards_async', 'read_backwards_finish');
Gio._promisify(Es.Stream.prototype, 'write_async', 'write_finish');
Gio._promisify(Es.Stream.prototype, 'read_async', 'read_finish');
Gio._promisify(Es.EventEnumerator.prototype, 'next_batch_async', 'next_batch_finish');

const SECOND = 1000000; // microseconds, a GTimeSpan
const TIMEOUT_MS = 30000;
const encoder = new TextEncoder();

function assert(condition, message) {
    if (!condition)
        throw new Error(`assertion failed: ${message}`);
}

function assertEqual(actual, expected, message) {
    const a = JSON.stringify(actual), e = JSON.stringify(expected);
    if (a !== e)
        throw new Error(`${message}: expected ${e}, got ${a}`);
}

function checkEsError(e, code, message, named) {
    assert(e instanceof GLib.Error, `${message}: not a GLib.Error: ${e}`);
    assert(e.matches(Es.error_quark(), code), `${message}: wrong error ${e.message}`);
    for (const value of named)
        assert(e.message.includes(String(value)), `${message}: "${e.message}" names ${value}`);
    return e;
}

function assertThrowsEs(func, code, message, named = []) {
    try {
        func();
    } catch (e) {
        return checkEsError(e, code, message, named);
    }
    throw new Error(`${message}: no error`);
}

async function assertRejectsEs(promise, code, message, named = []) {
    try {
        await promise;
    } catch (e) {
        return checkEsError(e, code, message, named);
    }
    throw new Error(`${message}: no error`);
}

function candidate(type, data = '', key = null, metadata = null) {
    const event = Es.CandidateEvent.new(type, new GLib.Bytes(encoder.encode(data)));
    if (key !== null)
        event.set_idempotency_key(key);
    if (metadata !== null)
        event.set_metadata(JSON.stringify(metadata));
    return event;
}

function drain(enumerator) {
    const items = [];
    for (let item = enumerator.next(null); item !== null; item = enumerator.next(null))
        items.push(item);
    return items;
}

function sleepMs(ms) {
    return new Promise(resolve => GLib.timeout_add(GLib.PRIORITY_DEFAULT, ms, () => {
        resolve();
        return GLib.SOURCE_REMOVE;
    }));
}

async function waitFor(condition, message) {
    const deadline = GLib.get_monotonic_time() + TIMEOUT_MS * 1000;
    while (!condition()) {
        if (GLib.get_monotonic_time() > deadline)
            throw new Error(`timed out: ${message}`);
        // eslint-disable-next-line no-await-in-loop
        await sleepMs(2);
    }
}

export function lifecycleTests(env) {
    // Runs body(factory) on a fresh database, then cleans up.
    async function withFactory(body) {
        const factory = env.newFactory();
        try {
            await body(factory);
        } finally {
            env.cleanup(factory);
        }
    }

    const write = (factory, streamId, types, expected = Es.VERSION_ANY) =>
        factory.open_stream(streamId, null).write(types.map(t => candidate(t)), expected, null);
    const read = (factory, streamId, filter = null) =>
        drain(factory.open_stream(streamId, null).read(0, filter, null));
    const versions = (factory, streamId, filter = null) =>
        read(factory, streamId, filter).map(e => e.get_version());
    const ids = infos => infos.map(i => i.get_stream_id());

    return {
        async 'life cycle: list streams with a prefix'() {
            await withFactory(async factory => {
                for (const [id, n] of [['cart-2', 1], ['cart-10', 3], ['cart-1', 2],
                    ['order-1', 1], ['cart_x', 1]])
                    write(factory, id, Array(n).fill('E'));

                const listing = drain(factory.list_streams('cart-', Es.ListStreamsFlags.NONE, null));
                assertEqual(ids(listing), ['cart-1', 'cart-10', 'cart-2'], 'byte-wise order');
                assertEqual(listing.map(i => i.get_event_count()), [2, 3, 1], 'event counts');
                assertEqual(listing.map(i => i.get_current_version()), [2, 3, 1], 'versions');
                assertEqual(listing.map(i => i.get_first_version()), [1, 1, 1], 'first versions');
                assert(listing.every(i => i.get_state() === Es.StreamState.ACTIVE), 'active');
                assertEqual(ids(drain(factory.list_streams('cart_', Es.ListStreamsFlags.NONE, null))),
                    ['cart_x'], "'_' is no wildcard");

                // for await over the promisified listing, page by page.
                const listed = [];
                for await (const info of await factory.list_streams_async(null,
                    Es.ListStreamsFlags.NONE, null))
                    listed.push(info.get_stream_id());
                assertEqual(listed, ['cart-1', 'cart-10', 'cart-2', 'cart_x', 'order-1'],
                    'for await');
                const enumerator = await factory.list_streams_async('cart-', 0, null);
                assertEqual(ids(await enumerator.next_batch_async(2, null)), ['cart-1', 'cart-10'],
                    'next_batch_async');
                assertEqual(ids(enumerator.next_batch(5, null)), ['cart-2'], 'next_batch');
                assert(!enumerator.is_closed(), 'open');
                assert(enumerator.close(null), 'close');
                assert(enumerator.is_closed(), 'closed');

                const events = read(factory, 'cart-10');
                const info = await factory.get_stream_info_async('cart-10', null);
                assertEqual(info.get_stream_id(), 'cart-10', 'stream id');
                assertEqual(info.get_first_timestamp_usec(), events[0].get_timestamp_usec(),
                    'first timestamp');
                assertEqual(info.get_last_timestamp_usec(), events[2].get_timestamp_usec(),
                    'last timestamp');
                assertEqual(info.get_first_timestamp().to_unix(),
                    events[0].get_timestamp().to_unix(), 'first GDateTime');
                assertEqual(info.get_last_timestamp().get_microsecond(),
                    events[2].get_timestamp().get_microsecond(), 'last GDateTime');
                assertEqual([info.get_max_age(), info.get_max_count()], [0, 0], 'no policy');

                const nobody = factory.get_stream_info('nobody', null);
                assertEqual([nobody.get_state(), nobody.get_current_version(),
                    nobody.get_event_count(), nobody.get_first_version()],
                [Es.StreamState.ACTIVE, 0, 0, 0], 'a stream never written');
                const total = factory.get_stream_info(null, null);
                assertEqual([total.get_stream_id(), total.get_event_count()], ['@all', 8],
                    'the whole database');
            });
        },

        async 'life cycle: soft delete'() {
            await withFactory(async factory => {
                const stream = factory.open_stream('doomed', null);
                stream.write([candidate('A', '1', 'k1'), candidate('B'), candidate('C')],
                    Es.VERSION_NO_STREAM, null);
                write(factory, 'kept', ['K']);
                stream.snapshot(new GLib.Bytes(encoder.encode('s')), 3, 'p', null);
                const position = factory.get_stream_info(null, null).get_current_version();

                await assertRejectsEs(factory.delete_stream_async('doomed', Es.VERSION_NO_STREAM,
                    Es.DeleteFlags.NONE, null), Es.Error.WRONG_EXPECTED_VERSION,
                'expected version', ['doomed']);
                assertEqual(versions(factory, 'doomed'), [1, 2, 3], 'nothing deleted');
                assertThrowsEs(() => factory.delete_stream('@all', -1, Es.DeleteFlags.NONE, null),
                    Es.Error.INVALID_ARGUMENT, '@all', ['@all']);

                assert(await factory.delete_stream_async('doomed', 3, Es.DeleteFlags.NONE, null),
                    'delete');
                assertEqual(versions(factory, 'doomed'), [], 'no events');
                assertEqual(read(factory, '@all').map(e => e.get_stream_id()), ['kept'], '@all');
                assertEqual(stream.load_snapshot('p', null), null, 'snapshot gone');
                const info = factory.get_stream_info('doomed', null);
                assertEqual([info.get_state(), info.get_current_version(), info.get_event_count()],
                    [Es.StreamState.DELETED, 3, 0], 'deleted state');
                assertEqual(ids(drain(factory.list_streams(null, Es.ListStreamsFlags.NONE, null))),
                    ['kept'], 'hidden');
                assertEqual(ids(drain(factory.list_streams(null,
                    Es.ListStreamsFlags.INCLUDE_DELETED, null))), ['doomed', 'kept'], 'listed');
                assert(factory.get_stream_info(null, null).get_current_version() > position,
                    'the delete took a position');

                assertEqual(await stream.write_async([candidate('D')], 3, null), 4, 'continues');
                assertEqual(stream.write([candidate('A', '1', 'k1')], -1, null), 5,
                    'a deleted key may come again');
                assertEqual(factory.get_stream_info('doomed', null).get_state(),
                    Es.StreamState.ACTIVE, 'active again');
                assertEqual(versions(factory, 'doomed'), [4, 5], 'new events');
            });
        },

        async 'life cycle: tombstone'() {
            await withFactory(async factory => {
                const stream = factory.open_stream('gone', null);
                stream.write([candidate('A'), candidate('B')], Es.VERSION_NO_STREAM, null);
                assert(factory.delete_stream('gone', -1, Es.DeleteFlags.TOMBSTONE, null), 'tombstone');
                const info = factory.get_stream_info('gone', null);
                assertEqual([info.get_state(), info.get_current_version(), info.get_event_count()],
                    [Es.StreamState.TOMBSTONED, 2, 0], 'tombstoned');

                await assertRejectsEs(stream.write_async([candidate('C')], -1, null),
                    Es.Error.STREAM_DELETED, 'write', ['gone']);
                assertThrowsEs(() => stream.write([candidate('C')], 2, null),
                    Es.Error.STREAM_DELETED, 'sync write', ['gone']);
                assertEqual(factory.get_stream_info('gone', null).get_current_version(), 2,
                    'nothing written');
                assertEqual(factory.open_stream('gone', null).get_version(), 2, 'open works');
                assertThrowsEs(() => factory.delete_stream('gone', -1, Es.DeleteFlags.NONE, null),
                    Es.Error.STREAM_DELETED, 'soft delete');
                await assertRejectsEs(factory.truncate_stream_async('gone', 1, null),
                    Es.Error.STREAM_DELETED, 'truncate');
                assertThrowsEs(() => factory.set_retention('gone', 0, 1, null),
                    Es.Error.STREAM_DELETED, 'retention');
                assertThrowsEs(() => factory.erase_event('gone', 1, null),
                    Es.Error.NOT_FOUND, 'erase');
                assert(factory.delete_stream('gone', -1, Es.DeleteFlags.TOMBSTONE, null), 'again');

                const storage = factory.get_storage();
                assertEqual(storage.read_page_full(null, 0, Es.ReadFlags.NONE, null, 10, null).length,
                    0, 'no marker without the flag');
                const marks = storage.read_page_full(null, 0, Es.ReadFlags.INCLUDE_TOMBSTONES, null,
                    10, null);
                assertEqual(marks.length, 1, 'one marker');
                assertEqual([marks[0].get_flags(), marks[0].get_stream_id(), marks[0].get_version(),
                    marks[0].get_event_type(), marks[0].get_data().get_size(),
                    marks[0].get_metadata(), marks[0].get_erased()],
                [Es.StoredEventFlags.TOMBSTONE, 'gone', 2, '$tombstone', 0, null, false], 'marker');
            });
        },

        async 'life cycle: truncate'() {
            await withFactory(async factory => {
                const stream = factory.open_stream('t', null);
                for (let i = 0; i < 6; i++)
                    stream.write([candidate('E')], -1, null);
                stream.snapshot(new GLib.Bytes(encoder.encode('2')), 2, 'p2', null);
                stream.snapshot(new GLib.Bytes(encoder.encode('3')), 3, 'p3', null);

                assertThrowsEs(() => factory.truncate_stream('t', 7, null),
                    Es.Error.INVALID_ARGUMENT, 'beyond', ['7', '6']);
                assertThrowsEs(() => factory.truncate_stream('t', 0, null),
                    Es.Error.INVALID_ARGUMENT, 'zero');
                assert(await factory.truncate_stream_async('t', 4, null), 'truncate');
                assertEqual(versions(factory, 't'), [4, 5, 6], 'kept');
                const info = factory.get_stream_info('t', null);
                assertEqual([info.get_first_version(), info.get_event_count(),
                    info.get_current_version()], [4, 3, 6], 'info');
                assertEqual(stream.load_snapshot('p2', null), null, 'stale snapshot gone');
                assertEqual(stream.load_snapshot('p3', null).get_version(), 3, 'valid snapshot kept');
                assert(factory.truncate_stream('t', 2, null), 'already truncated');
                assertEqual(versions(factory, 't'), [4, 5, 6], 'no change');
            });
        },

        async 'life cycle: erase'() {
            await withFactory(async factory => {
                const stream = factory.open_stream('e', null);
                stream.write([candidate('Visit', 'a', 'k1', {user: 'ada'}),
                    candidate('Visit', 'secret', 'k2', {user: 'ada'}),
                    candidate('Visit', 'c', 'k3', {user: 'bob'})], 0, null);
                const before = read(factory, 'e');
                assert(await factory.erase_event_async('e', 2, null), 'erase');
                const after = read(factory, 'e');
                assert(after[1].get_erased(), 'erased');
                assertEqual(after[1].get_flags(), Es.StoredEventFlags.ERASED, 'flags');
                assertEqual(after[1].get_data().get_size(), 0, 'data gone');
                assertEqual(after[1].get_metadata(), null, 'metadata gone');
                for (const getter of ['get_version', 'get_sequence_id', 'get_event_type', 'get_id',
                    'get_timestamp_usec'])
                    assertEqual(after[1][getter](), before[1][getter](), getter);
                assertEqual(new TextDecoder().decode(after[0].get_data().toArray()), 'a', 'others kept');
                assertEqual(after[2].get_flags(), Es.StoredEventFlags.NONE, 'others not erased');
                assert(factory.erase_event('e', 2, null), 'twice');
                assertThrowsEs(() => factory.erase_event('e', 9, null), Es.Error.NOT_FOUND,
                    'not stored', ['9']);
                const filter = Es.EventFilter.new();
                filter.add_equals('metadata.user', new GLib.Variant('s', 'ada'));
                assertEqual(versions(factory, 'e', filter), [1], 'metadata filter');
            });
        },

        async 'life cycle: retention and sweep'() {
            await withFactory(async factory => {
                assertEqual(factory.sweep_interval, 3600, 'sweep-interval default');
                factory.sweep_interval = 0;
                assertEqual(factory.sweep_interval, 0, 'sweep-interval set');
                write(factory, 'r', Array(5).fill('E'));
                write(factory, 'other', Array(4).fill('E'));
                assertThrowsEs(() => factory.set_retention('r', -5, 0, null),
                    Es.Error.INVALID_ARGUMENT, 'negative age', ['-5']);
                assert(await factory.set_retention_async('r', 0, 3, null), 'count');
                assertEqual(versions(factory, 'r'), [3, 4, 5], 'at once');
                write(factory, 'r', ['E', 'E']);
                assertEqual(versions(factory, 'r'), [5, 6, 7], 'on append');
                assert(factory.set_retention(null, 0, 2, null), 'database-wide');
                assertEqual(versions(factory, 'r'), [6, 7], 'stricter wins');
                assertEqual(versions(factory, 'other'), [3, 4], 'every stream');
                assertEqual(factory.get_stream_info(null, null).get_max_count(), 2, 'stored');
                assert(factory.set_retention('@all', 0, 0, null), 'lifted');

                // Age: "Old" is older than a second, "New" is not.
                write(factory, 'a', ['Old']);
                await sleepMs(1500);
                write(factory, 'a', ['New']);
                assert(factory.set_retention('a', SECOND, 0, null), 'age');
                assertEqual(read(factory, 'a').map(e => e.get_event_type()), ['New'], 'old gone');
                assertEqual(factory.get_stream_info('a', null).get_max_age(), SECOND, 'max age');
                await sleepMs(1500);
                assertEqual(await factory.sweep_async(null), 1, 'the sweep removes "New"');
                const info = factory.get_stream_info('a', null);
                assertEqual([info.get_state(), info.get_current_version(), info.get_event_count()],
                    [Es.StreamState.ACTIVE, 2, 0], 'emptied, active');
                assertEqual(factory.sweep(null), 0, 'nothing more');
                const [removed, hasAge] = factory.get_storage().sweep(GLib.get_real_time(), null);
                assertEqual([removed, hasAge], [0, true], 'storage sweep');
            });
        },

        async 'life cycle: newest first and ranges'() {
            await withFactory(async factory => {
                const stream = factory.open_stream('b', null);
                const amounts = [5, 9.5, 10, 12, 'many', 20];
                for (const amount of amounts) {
                    stream.write([candidate('Paid', '', null, {amount})], -1, null);
                    // eslint-disable-next-line no-await-in-loop
                    await sleepMs(2); // distinct timestamps
                }
                const events = read(factory, 'b');

                const newest = [];
                for await (const e of await stream.read_backwards_async(Es.READ_FROM_END, null, null))
                    newest.push(e.get_version());
                assertEqual(newest, [6, 5, 4, 3, 2, 1], 'newest first');
                assertEqual(drain(stream.read_backwards(3, null, null)).map(e => e.get_version()),
                    [2, 1], 'before 3');
                assertThrowsEs(() => stream.read_backwards(-2, null, null),
                    Es.Error.INVALID_ARGUMENT, 'below -1', ['-2']);
                const page = factory.get_storage().read_page_full('b', Number.MAX_SAFE_INTEGER,
                    Es.ReadFlags.BACKWARDS, null, 2, null);
                assertEqual(page.map(e => e.get_version()), [6, 5], 'storage page');

                let f = Es.EventFilter.new();
                f.add_compare('version', Es.FilterOperator.GREATER, new GLib.Variant('x', 2));
                f.add_compare('version', Es.FilterOperator.LESS_OR_EQUAL, new GLib.Variant('x', 4));
                assertEqual(versions(factory, 'b', f), [3, 4], 'version range');
                f = Es.EventFilter.new();
                f.add_compare('metadata.amount', Es.FilterOperator.GREATER_OR_EQUAL,
                    new GLib.Variant('x', 10));
                assertEqual(versions(factory, 'b', f), [3, 4, 6], 'numeric metadata');
                f = Es.EventFilter.new();
                f.add_compare('metadata.amount', Es.FilterOperator.LESS, new GLib.Variant('d', 9.75));
                assertEqual(versions(factory, 'b', f), [1, 2], 'double');
                f = Es.EventFilter.new();
                f.add_compare('metadata.amount', Es.FilterOperator.LESS, new GLib.Variant('s', 'x'));
                assertThrowsEs(() => read(factory, 'b', f), Es.Error.INVALID_ARGUMENT, 'string',
                    ['metadata.amount']);

                f = Es.EventFilter.new();
                f.add_time_range(events[2].get_timestamp(), events[4].get_timestamp());
                assertEqual(versions(factory, 'b', f), [3, 4], 'time range');
                assertEqual(versions(factory, '@all', f), [3, 4], 'time range of @all');
                f = Es.EventFilter.new();
                f.add_time_range(null, events[1].get_timestamp());
                assertEqual(versions(factory, 'b', f), [1], 'until');
                f = Es.EventFilter.new();
                f.add_time_range(GLib.DateTime.new_now_utc().add_hours(-1), null);
                const lastHour = [];
                for await (const e of await stream.read_backwards_async(-1, f, null))
                    lastHour.push(e.get_version());
                assertEqual(lastHour, [6, 5, 4, 3, 2, 1], 'the last hour, newest first');
                f = Es.EventFilter.new();
                f.add_compare('timestamp', Es.FilterOperator.GREATER,
                    new GLib.Variant('x', events[4].get_timestamp_usec()));
                assertEqual(versions(factory, 'b', f), [6], 'timestamp');
                f = Es.EventFilter.new();
                f.add_compare('metadata.amount', Es.FilterOperator.GREATER, new GLib.Variant('x', 9));
                assertEqual(events.map(e => f.matches(e)), [false, true, true, true, false, true],
                    'matches');
            });
        },

        async 'life cycle: a watch ends when its stream is tombstoned'() {
            await withFactory(async factory => {
                const stream = factory.open_stream('w', null);
                const seen = [], errors = [];
                const watch = stream.watch(0);
                watch.connect('event', (_w, e) => seen.push(e.get_version()));
                watch.connect('error', (_w, error) => errors.push(error));
                try {
                    await stream.write_async([candidate('A'), candidate('B')], 0, null);
                    await waitFor(() => seen.length === 2, 'two events');
                    const other = env.secondFactory(factory);
                    try {
                        assert(other.delete_stream('w', 2, Es.DeleteFlags.TOMBSTONE, null),
                            'tombstone from another factory');
                    } finally {
                        other.close(null);
                    }
                    await waitFor(() => errors.length > 0 && !watch.get_active(), 'the error');
                    assertEqual(errors.length, 1, 'one error');
                    checkEsError(errors[0], Es.Error.STREAM_DELETED, 'watch error', ['w']);
                    assertEqual(seen, [1, 2], 'events before');
                } finally {
                    watch.stop();
                }
                const lateErrors = [];
                const late = stream.watch(0);
                late.connect('error', (_w, error) => lateErrors.push(error));
                await waitFor(() => lateErrors.length > 0 && !late.get_active(), 'at once');
                checkEsError(lateErrors[0], Es.Error.STREAM_DELETED, 'late watch', ['w']);
            });
        },

        async 'metadata indexes: declare, list, drop; same answers'() {
            await withFactory(async factory => {
                for (let i = 0; i < 12; i++) {
                    factory.open_stream(`m-${i % 3}`, null).write(
                        [candidate('E', '', null, {tenant: `t${i % 4}`, user: {id: i}})],
                        Es.VERSION_ANY, null);
                }
                const tenants = t => {
                    const f = Es.EventFilter.new();
                    f.add_equals('metadata.tenant', new GLib.Variant('s', t));
                    return read(factory, '@all', f).map(e => `${e.get_stream_id()}/${e.get_version()}`);
                };
                const before = tenants('t1');
                assertEqual(before, ['m-1/1', 'm-2/2', 'm-0/4'], 'before');

                assertEqual(factory.list_metadata_indexes(null), [], 'none');
                assert(factory.add_metadata_index('tenant', null), 'add');
                assert(factory.add_metadata_index('tenant', null), 'add again');
                assert(await factory.add_metadata_index_async('user.id', null), 'add async');
                assertEqual(factory.list_metadata_indexes(null), ['tenant', 'user.id'], 'listed');
                assertEqual(await factory.list_metadata_indexes_async(null), ['tenant', 'user.id'],
                    'listed async');
                assertEqual(tenants('t1'), before, 'with the index');

                const storage = factory.get_storage();
                assertEqual(storage.list_metadata_indexes(null), ['tenant', 'user.id'], 'storage');
                assert(storage.remove_metadata_index('user.id', null), 'storage remove');
                assert(storage.add_metadata_index('user', null), 'storage add');
                const other = env.secondFactory(factory);
                try {
                    assertEqual(other.list_metadata_indexes(null), ['tenant', 'user'], 'other');
                } finally {
                    other.close(null);
                }

                assertThrowsEs(() => factory.add_metadata_index('a..b', null),
                    Es.Error.INVALID_ARGUMENT, 'bad path', ['a..b']);
                await assertRejectsEs(factory.remove_metadata_index_async('nowhere', null),
                    Es.Error.NOT_FOUND, 'undeclared', ['nowhere']);
                assert(factory.remove_metadata_index('user', null), 'remove');
                assert(await factory.remove_metadata_index_async('tenant', null), 'remove async');
                assertEqual(factory.list_metadata_indexes(null), [], 'none left');
                assertEqual(tenants('t1'), before, 'after');
            });
        },

        async 'life cycle: compact'() {
            await withFactory(async factory => {
                write(factory, 'big', Array(50).fill('E'));
                assert(factory.delete_stream('big', -1, Es.DeleteFlags.NONE, null), 'delete');
                assert(factory.compact(null), 'compact');
                assert(await factory.compact_async(null), 'compact async');
                assertEqual(write(factory, 'big', ['E']), 51, 'continues');
            });
        },
    };
}
