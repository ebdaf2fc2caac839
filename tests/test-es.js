// test-es.js: es-glib from GJS, through the typelib. Run with `gjs -m`.
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import GObject from 'gi://GObject';
import Es from 'gi://Es?version=1.0';
import System from 'system';

import {lifecycleTests} from './lifecycle-cases.js';
import {subscriptionTests} from './subscription-cases.js';

Gio._promisify(Es.Stream.prototype, 'write_async', 'write_finish');
Gio._promisify(Es.Stream.prototype, 'read_async', 'read_finish');
Gio._promisify(Es.Stream.prototype, 'snapshot_async', 'snapshot_finish');
Gio._promisify(Es.Stream.prototype, 'load_snapshot_async', 'load_snapshot_finish');
Gio._promisify(Es.Stream.prototype, 'get_metrics_async', 'get_metrics_finish');
Gio._promisify(Es.Stream.prototype, 'query_version_async', 'query_version_finish');
Gio._promisify(Es.StreamFactory.prototype, 'open_stream_async', 'open_stream_finish');
Gio._promisify(Es.StreamFactory.prototype, 'close_async', 'close_finish');
Gio._promisify(Es.EventEnumerator.prototype, 'next_batch_async', 'next_batch_finish');
Gio._promisify(Es.Stream.prototype, 'read_cursor_async', 'read_cursor_finish');
Gio._promisify(Es.EventCursor.prototype, 'next_async', 'next_finish');
Gio._promisify(Es.SqliteStreamFactory, 'new_async', 'new_finish');
Gio._promisify(Es.StorageHandle.prototype, 'append_async', 'append_finish');

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function assert(condition, message) {
    if (!condition)
        throw new Error(`assertion failed: ${message}`);
}

function assertEqual(actual, expected, message) {
    if (actual !== expected)
        throw new Error(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

function assertThrowsEs(func, code, message) {
    try {
        func();
    } catch (e) {
        assert(e instanceof GLib.Error, `${message}: not a GLib.Error: ${e}`);
        assert(e.matches(Es.error_quark(), code), `${message}: wrong error ${e.message}`);
        return e;
    }
    throw new Error(`${message}: no error`);
}

async function assertRejectsEs(promise, code, message) {
    try {
        await promise;
    } catch (e) {
        assert(e.matches(Es.error_quark(), code), `${message}: wrong error ${e.message}`);
        return e;
    }
    throw new Error(`${message}: no error`);
}

function event(type, data = '', key = null, metadata = null) {
    const candidate = new Es.CandidateEvent({
        event_type: type,
        data: new GLib.Bytes(encoder.encode(data)),
    });
    if (key !== null)
        candidate.set_idempotency_key(key);
    if (metadata !== null)
        candidate.set_metadata(JSON.stringify(metadata));
    return candidate;
}

function readAll(enumerator) {
    const events = [];
    for (let e = enumerator.next(null); e !== null; e = enumerator.next(null))
        events.push(e);
    return events;
}

function tempDatabase() {
    const dir = GLib.dir_make_tmp('es-gjs-XXXXXX');
    return [dir, GLib.build_filenamev([dir, 'events.db'])];
}

function removeTree(dir) {
    const file = Gio.File.new_for_path(dir);
    const children = file.enumerate_children('standard::name', Gio.FileQueryInfoFlags.NONE, null);
    for (let info = children.next_file(null); info !== null; info = children.next_file(null))
        file.get_child(info.get_name()).delete(null);
    file.delete(null);
}

const tests = {
    'constants and errors'() {
        assertEqual(Es.VERSION_ANY, -1, 'VERSION_ANY');
        assertEqual(Es.VERSION_NO_STREAM, 0, 'VERSION_NO_STREAM');
        assertEqual(Es.ALL_STREAM, '@all', 'ALL_STREAM');
        assert(Es.Error.WRONG_EXPECTED_VERSION !== undefined, 'Es.Error enum');
    },

    async 'cursor: rows, windows and the asynchronous read'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        const stream = factory.open_stream('cursor', null);
        const batch = [];
        for (let i = 0; i < 1100; i++)
            batch.push(event(i % 2 ? 'Odd' : 'Even', `d${i}`, i % 3 ? null : `k${i}`,
                i % 2 ? null : {n: i}));
        stream.write(batch, Es.VERSION_ANY, null);
        factory.open_stream('other', null).write([event('Other', 'o')], Es.VERSION_ANY, null);

        for (const id of ['cursor', '@all']) {
            const handle = factory.open_stream(id, null);
            const expected = readAll(handle.read(0, null, null));
            const cursor = handle.read_cursor(0, null, null);
            let i = 0;
            while (cursor.next(null)) {
                const e = expected[i++];
                assertEqual(cursor.get_sequence_id(), e.get_sequence_id(), 'sequence id');
                assertEqual(cursor.get_version(), e.get_version(), 'version');
                assertEqual(cursor.get_timestamp_usec(), e.get_timestamp_usec(), 'timestamp');
                assertEqual(cursor.get_stream_id(), e.get_stream_id(), 'stream id');
                assertEqual(cursor.get_event_type(), e.get_event_type(), 'event type');
                assertEqual(cursor.get_idempotency_key(), e.get_idempotency_key(), 'key');
                assertEqual(cursor.get_metadata(), e.get_metadata(), 'metadata');
                assertEqual(cursor.get_flags(), e.get_flags(), 'flags');
                const want = decoder.decode(e.get_data().toArray());
                assertEqual(decoder.decode(cursor.get_data()), want, 'data');
                assertEqual(decoder.decode(cursor.dup_data().toArray()), want, 'dup data');
                assertEqual(cursor.get_event().get_id(), e.get_id(), 'event built');
            }
            assertEqual(i, expected.length, `rows of ${id}`);
            assert(cursor.close(null), 'close');
        }

        // Windows: the columns of up to 400 rows at a time.
        const all = readAll(factory.open_stream('@all', null).read(0, null, null));
        const cursor = factory.open_stream('@all', null).read_cursor(0, null, null);
        let seen = 0;
        for (let n = cursor.next_rows(400, null); n > 0; n = cursor.next_rows(400, null)) {
            const types = cursor.dup_event_types();
            const streams = cursor.dup_stream_ids();
            const versions = cursor.get_versions();
            const seqs = cursor.get_sequence_ids();
            const times = cursor.get_timestamps_usec();
            const data = cursor.dup_data_list();
            // The same payloads in one block, with the length of each.
            const [joined, lengths] = cursor.dup_data_joined();
            const block = joined.toArray();
            assertEqual(lengths.length, n, 'joined lengths');
            let offset = 0;
            for (let j = 0; j < n; j++) {
                assertEqual(decoder.decode(block.subarray(offset, offset + lengths[j])),
                    decoder.decode(data[j].toArray()), 'joined data');
                offset += lengths[j];
            }
            assertEqual(offset, block.length, 'joined size');
            assertEqual(types.length, n, 'window length');
            for (let j = 0; j < n; j++) {
                const e = all[seen + j];
                assertEqual(types[j], e.get_event_type(), 'window type');
                assertEqual(streams[j], e.get_stream_id(), 'window stream');
                assertEqual(versions[j], e.get_version(), 'window version');
                assertEqual(seqs[j], e.get_sequence_id(), 'window sequence id');
                assertEqual(times[j], e.get_timestamp_usec(), 'window timestamp');
                assertEqual(decoder.decode(data[j].toArray()),
                    decoder.decode(e.get_data().toArray()), 'window data');
            }
            seen += n;
        }
        assertEqual(seen, all.length, 'every row in windows');

        // Asynchronously.
        const asyncCursor = await stream.read_cursor_async(1000, null, null);
        const versions = [];
        while (await asyncCursor.next_async(null))
            versions.push(asyncCursor.get_version());
        assertEqual(versions.length, 100, 'async rows');
        assertEqual(versions[0], 1001, 'async first');
        assertEqual(versions[99], 1100, 'async last');
        factory.close(null);
    },

    'write, read and fields'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        const stream = factory.open_stream('cart-1', null);
        assertEqual(stream.get_stream_id(), 'cart-1', 'stream id');
        assertEqual(stream.version, 0, 'empty stream version');

        const version = stream.write([
            event('Added', 'apple', 'k1', {user: 'ada'}),
            event('Added', 'pear'),
        ], Es.VERSION_NO_STREAM, null);
        assertEqual(version, 2, 'new version');
        assertEqual(stream.get_version(), 2, 'handle version');

        const events = readAll(stream.read(0, null, null));
        assertEqual(events.length, 2, 'events read');
        const [first, second] = events;
        assertEqual(first.get_id(), 'k1', 'id is the idempotency key');
        assert(second.get_id().length > 0, 'keyless events get an id');
        assertEqual(first.get_stream_id(), 'cart-1', 'stream id');
        assertEqual(first.get_version(), 1, 'version');
        assert(first.get_sequence_id() > 0, 'sequence id');
        assertEqual(first.get_event_type(), 'Added', 'event type');
        assertEqual(decoder.decode(first.get_data().toArray()), 'apple', 'data');
        assertEqual(JSON.parse(first.get_metadata()).user, 'ada', 'metadata');
        assertEqual(second.get_metadata(), null, 'no metadata');
        assert(first.get_timestamp().to_unix() > 0, 'timestamp');
        factory.close(null);
    },

    'optimistic concurrency and idempotency'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        const stream = factory.open_stream('cart-2', null);
        stream.write([event('Added', 'x', 'same')], Es.VERSION_ANY, null);
        const error = assertThrowsEs(() => stream.write([event('Added')], 5, null),
            Es.Error.WRONG_EXPECTED_VERSION, 'stale version');
        assert(error.message.includes('cart-2'), 'message names the stream');
        assertEqual(stream.write([event('Added', 'y', 'same')], Es.VERSION_ANY, null), 1,
            'an idempotent retry is skipped');
        assertThrowsEs(() => factory.open_stream('@all', null).write([event('X')], -1, null),
            Es.Error.INVALID_ARGUMENT, 'writing @all');
        assertThrowsEs(() => stream.write([event('')], -1, null),
            Es.Error.INVALID_ARGUMENT, 'empty event type');
        factory.close(null);
    },

    async 'retries converge'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        // Another factory on the file: another process, as far as the first knows.
        const otherFactory = Es.SqliteStreamFactory.new(path, null);
        const mine = factory.open_stream('account', null);
        const theirs = otherFactory.open_stream('account', null);

        // An idempotent retry with an expected version succeeds.
        assertEqual(mine.write([event('Opened', '', 'req-1')], 0, null), 1, 'first write');
        assertEqual(mine.write([event('Opened', '', 'req-1')], 0, null), 1, 'retried write');

        theirs.write([event('Deposited'), event('Deposited')], Es.VERSION_ANY, null);
        assertEqual(mine.get_version(), 1, 'stale handle');
        const notified = [];
        mine.connect('notify::version', () => notified.push(mine.version));

        let retries = 0;
        let version;
        for (;;) {
            try {
                version = mine.write([event('Withdrawn')], mine.get_version(), null);
                break;
            } catch (e) {
                if (!e.matches(Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION))
                    throw e;
                retries++;
                assert(retries < 10, 'the retry loop does not converge');
            }
        }
        assertEqual(retries, 1, 'one retry');
        assertEqual(version, 4, 'written after the retry');
        assertEqual(notified.join(','), '3,4', 'version notified');

        // Asynchronously: the conflict updates the version, the retry works.
        theirs.write([event('Deposited')], Es.VERSION_ANY, null);
        await assertRejectsEs(mine.write_async([event('Withdrawn')], mine.get_version(), null),
            Es.Error.WRONG_EXPECTED_VERSION, 'async conflict');
        assertEqual(await mine.write_async([event('Withdrawn')], mine.get_version(), null), 6,
            'async retry');

        // Reading the stored version without writing.
        theirs.write([event('Deposited')], Es.VERSION_ANY, null);
        assertEqual(mine.query_version(null), 7, 'query_version');
        assertEqual(mine.version, 7, 'version property');
        theirs.write([event('Deposited')], Es.VERSION_ANY, null);
        assertEqual(await mine.query_version_async(null), 8, 'query_version_async');
        assertEqual(mine.get_version(), 8, 'version after query_version_async');
        assertEqual(readAll(mine.read(0, null, null)).length, 8, 'nothing written by asking');

        otherFactory.close(null);
        factory.close(null);
        removeTree(dir);
    },

    'filters'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        const stream = factory.open_stream('orders', null);
        stream.write([
            event('Placed', '', null, {region: 'eu', total: 10}),
            event('Paid', '', null, {region: 'us', total: 20}),
            event('Shipped', '', null, {region: 'eu', total: 30}),
        ], Es.VERSION_ANY, null);

        let filter = new Es.EventFilter();
        filter.add_equals('metadata.region', new GLib.Variant('s', 'eu'));
        assertEqual(readAll(stream.read(0, filter, null)).length, 2, 'metadata equals');

        filter = new Es.EventFilter();
        filter.add_in('event_type', new GLib.Variant('as', ['Paid', 'Shipped']));
        filter.add_equals('metadata.total', new GLib.Variant('x', 30));
        const events = readAll(stream.read(0, filter, null));
        assertEqual(events.length, 1, 'in AND equals');
        assertEqual(events[0].get_event_type(), 'Shipped', 'the right event');

        filter = new Es.EventFilter();
        filter.add_like('event_type', 'P%');
        assertEqual(readAll(stream.read(0, filter, null)).length, 2, 'like');
        assertEqual(filter.get_n_clauses(), 1, 'clause count');

        filter = new Es.EventFilter();
        filter.add_equals('no_such_field', new GLib.Variant('s', 'x'));
        assertThrowsEs(() => readAll(stream.read(0, filter, null)),
            Es.Error.INVALID_ARGUMENT, 'unknown field');
        factory.close(null);
    },

    'snapshots and metrics'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        const stream = factory.open_stream('counter', null);
        stream.write([event('Inc'), event('Inc'), event('Inc')], Es.VERSION_ANY, null);
        assertEqual(stream.load_snapshot(null, null), null, 'no snapshot yet');
        assert(stream.snapshot(new GLib.Bytes(encoder.encode('3')), -1, null, null), 'saved');
        const snapshot = stream.load_snapshot(null, null);
        assertEqual(snapshot.get_version(), 3, 'snapshot version');
        assertEqual(snapshot.get_projection_name(), 'default', 'default projection');
        assertEqual(decoder.decode(snapshot.get_state().toArray()), '3', 'state');
        assertThrowsEs(() => stream.snapshot(new GLib.Bytes(encoder.encode('9')), 9, null, null),
            Es.Error.INVALID_ARGUMENT, 'snapshot beyond the stream');

        const metrics = stream.get_metrics(null);
        assertEqual(metrics.get_current_version(), 3, 'current version');
        assertEqual(metrics.get_event_count(), 3, 'event count');
        assert(metrics.get_last_timestamp() !== null, 'last timestamp');
        factory.close(null);
    },

    async 'async API'() {
        const [dir, path] = tempDatabase();
        const factory = await Es.SqliteStreamFactory.new_async(path, null);
        const stream = await factory.open_stream_async('async-1', null);
        assertEqual(await stream.write_async([event('A'), event('B')], Es.VERSION_ANY, null), 2,
            'write_async');
        const enumerator = await stream.read_async(0, null, null);
        const batch = await enumerator.next_batch_async(10, null);
        assertEqual(batch.length, 2, 'next_batch_async');
        assertEqual((await enumerator.next_batch_async(10, null)).length, 0, 'end');
        assert(await stream.snapshot_async(new GLib.Bytes(encoder.encode('s')), -1, 'p', null),
            'snapshot_async');
        assertEqual((await stream.load_snapshot_async('p', null)).get_version(), 2,
            'load_snapshot_async');
        assertEqual((await stream.get_metrics_async(null)).get_event_count(), 2,
            'get_metrics_async');
        await assertRejectsEs(stream.write_async([event('C')], 0, null),
            Es.Error.WRONG_EXPECTED_VERSION, 'async conflict');
        await factory.close_async(null);
        assertThrowsEs(() => stream.write([event('D')], -1, null), Es.Error.CLOSED, 'closed');
        removeTree(dir);
    },

    async 'watch'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        const stream = factory.open_stream('live', null);
        stream.write([event('Old')], Es.VERSION_ANY, null);

        const seen = [];
        const watch = stream.watch(0);
        await new Promise((resolve, reject) => {
            watch.connect('event', (_w, e) => {
                seen.push(e.get_version());
                if (seen.length === 2)
                    resolve();
            });
            watch.connect('caught-up', () => {
                assertEqual(seen.length, 1, 'history before caught-up');
                stream.write([event('New')], Es.VERSION_ANY, null);
            });
            watch.connect('error', (_w, error) => reject(error));
        });
        assertEqual(seen.join(','), '1,2', 'history then live');
        assertEqual(watch.get_last_version(), 2, 'last version');
        watch.stop();
        assert(!watch.get_active(), 'stopped');
        factory.close(null);
    },
};


// The rest of the public API, so that every callable of Es-1.0.gir is called
// from GJS (tests/bindings/check-coverage.py checks it).
Object.assign(tests, {
    'value types'() {
        const candidate = Es.CandidateEvent.new('Added', new GLib.Bytes(encoder.encode('x')));
        assertEqual(candidate.get_event_type(), 'Added', 'candidate type');
        assertEqual(decoder.decode(candidate.get_data().toArray()), 'x', 'candidate data');
        assertEqual(candidate.get_idempotency_key(), null, 'no key');
        assertEqual(candidate.get_metadata(), null, 'no metadata');
        candidate.set_idempotency_key('k');
        candidate.set_metadata('{"a":1}');
        assertEqual(candidate.get_idempotency_key(), 'k', 'key');
        assertEqual(candidate.idempotency_key, 'k', 'key property');
        assertEqual(candidate.metadata, '{"a":1}', 'metadata property');
        assertEqual(Es.CandidateEvent.new('Empty', null).get_data().get_size(), 0, 'empty data');

        // Many candidates in one call: the i-th type, slice of the data,
        // key and metadata; an empty key or metadata is none (GJS cannot
        // put null in an array of strings).
        const batch = Es.CandidateEvent.new_batch(['A', 'B', 'C'],
            new GLib.Bytes(encoder.encode('abxyz')), [2, 0, 3],
            ['k1', '', 'k3'], ['', '{"n":2}', '']);
        assertEqual(batch.length, 3, 'batch length');
        assertEqual(batch.map(c => c.get_event_type()).join(), 'A,B,C', 'batch types');
        assertEqual(batch.map(c => decoder.decode(c.get_data().toArray())).join(), 'ab,,xyz',
            'batch data');
        assertEqual(batch[0].get_idempotency_key(), 'k1', 'batch key');
        assertEqual(batch[1].get_idempotency_key(), null, 'batch no key');
        assertEqual(batch[1].get_metadata(), '{"n":2}', 'batch metadata');
        assertEqual(batch[2].get_metadata(), null, 'batch no metadata');
        const bare = Es.CandidateEvent.new_batch(['T'], null, null, null, null);
        assertEqual(bare[0].get_data().get_size(), 0, 'batch empty data');

        const when = GLib.DateTime.new_utc(2024, 5, 1, 12, 0, 0.5);
        const stored = Es.StoredEvent.new('s-1', 7, 3, when, 'Typed',
            new GLib.Bytes(encoder.encode('d')), 'key', '{"m":true}');
        assertEqual(stored.get_sequence_id(), 7, 'sequence id');
        assertEqual(stored.get_version(), 3, 'version');
        assertEqual(stored.get_id(), 'key', 'id');
        assertEqual(stored.get_idempotency_key(), 'key', 'idempotency key');
        assertEqual(stored.get_timestamp_usec(), when.to_unix() * 1000000 + 500000, 'usec');
        assertEqual(stored.timestamp_usec, stored.get_timestamp_usec(), 'usec property');
        assertEqual(stored.get_timestamp().to_unix(), when.to_unix(), 'timestamp');
        assertEqual(stored.event_type, 'Typed', 'event-type property');
        assertEqual(Es.StoredEvent.new('s', 1, 1, when, 'T', null, null, null)
            .get_idempotency_key(), null, 'keyless');

        const snapshot = Es.Snapshot.new(null, 'p', 2, new GLib.Bytes(encoder.encode('st')), null);
        assertEqual(snapshot.get_stream_id(), Es.ALL_STREAM, 'snapshot of @all');
        assertEqual(snapshot.get_projection_name(), 'p', 'projection');
        assertEqual(snapshot.get_version(), 2, 'snapshot version');
        assertEqual(decoder.decode(snapshot.get_state().toArray()), 'st', 'state');
        assert(snapshot.get_timestamp() !== null, 'snapshot timestamp');

        const metrics = Es.StreamMetrics.new(4, 4, null);
        assertEqual(metrics.get_current_version(), 4, 'metrics version');
        assertEqual(metrics.get_event_count(), 4, 'metrics count');
        assertEqual(metrics.get_last_timestamp(), null, 'metrics timestamp');
        assertEqual(metrics.event_count, 4, 'event-count property');
    },

    'event filter API'() {
        const filter = Es.EventFilter.new();
        filter.add_equals('stream_id', new GLib.Variant('s', 's-1'));
        filter.add_in('version', new GLib.Variant('ax', [1, 3]));
        filter.add_like('event_type', 'T%');
        assertEqual(filter.get_n_clauses(), 3, 'clauses');
        const [field, op, value] = filter.get_clause(1);
        assertEqual(field, 'version', 'clause field');
        assertEqual(op, Es.FilterOperator.IN, 'clause operator');
        assertEqual(value.deepUnpack().join(','), '1,3', 'clause value');
        assert(filter.validate(), 'valid');
        const when = GLib.DateTime.new_now_utc();
        assert(filter.matches(Es.StoredEvent.new('s-1', 1, 3, when, 'Typed', null, null, null)),
            'matches');
        assert(!filter.matches(Es.StoredEvent.new('s-1', 1, 2, when, 'Typed', null, null, null)),
            'does not match');
        const bad = Es.EventFilter.new();
        bad.add_equals('colour', new GLib.Variant('s', 'red'));
        assertThrowsEs(() => bad.validate(), Es.Error.INVALID_ARGUMENT, 'bad field');
        assertEqual(GLib.quark_to_string(Es.error_quark()), 'es-error-quark', 'error domain');

        // What a backend translating filters uses.
        const [kind, path] = Es.EventFilter.parse_field('metadata.user.id');
        assertEqual(kind, Es.FilterField.METADATA, 'metadata field');
        assertEqual(path.join('.'), 'user.id', 'metadata path');
        assertEqual(Es.EventFilter.parse_field('colour')[0], Es.FilterField.INVALID, 'unknown field');
        const [valueKind, , integer] = Es.EventFilter.classify_value(new GLib.Variant('u', 7));
        assertEqual(valueKind, Es.FilterValueKind.INT64, 'integer kind');
        assertEqual(integer, 7, 'integer value');
    },

    'enumerator and factory details'() {
        const factory = Es.SqliteStreamFactory.new(null, null);
        assertEqual(factory.get_path(), null, 'in-memory path');
        assert(!factory.is_closed(), 'open');
        const stream = factory.open_stream('e', null);
        stream.write([event('A'), event('B'), event('C')], Es.VERSION_ANY, null);
        const enumerator = stream.read(0, null, null);
        const batch = enumerator.next_batch(2, null);
        assertEqual(batch.map(e => e.get_event_type()).join(''), 'AB', 'next_batch');
        assertEqual(enumerator.next(null).get_event_type(), 'C', 'next');
        assertEqual(enumerator.next_batch(2, null).length, 0, 'empty at the end');
        assert(!enumerator.is_closed(), 'not closed');
        assert(enumerator.close(null), 'close');
        assert(enumerator.is_closed(), 'closed');
        factory.close(null);
        assert(factory.is_closed(), 'factory closed');
    },

    async 'storage handle'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        assertEqual(factory.get_path(), path, 'factory path');
        const storage = factory.get_storage();
        assert(storage instanceof Es.SqliteStorage, 'SQLite storage');
        assertEqual(storage.get_path(), path, 'storage path');
        assert(storage.get_pool_size() >= 1, 'pool size');

        let [ok, version] = storage.get_version('s', null);
        assertEqual(version, 0, 'empty version');
        [ok, version] = storage.append('s', Es.VERSION_NO_STREAM, [event('A', '', 'a')], null);
        assert(ok, 'append');
        assertEqual(version, 1, 'appended');
        // Gio._promisify drops the leading `true` of a (gboolean, out) finish.
        [version] = await storage.append_async('s', 1, [event('B'), event('A', '', 'a')], null);
        assertEqual(version, 2, 'append_async');
        assertThrowsEs(() => storage.append('s', 7, [event('C')], null),
            Es.Error.WRONG_EXPECTED_VERSION, 'storage conflict');

        const page = storage.read_page('s', 0, null, 10, null);
        assertEqual(page.map(e => e.get_event_type()).join(''), 'AB', 'read_page');
        assertEqual(storage.read_page(null, 0, null, 1, null).length, 1, 'page of @all');
        assertEqual(storage.get_version(null, null)[1], 2, 'last sequence id');
        assertEqual(storage.get_metrics('s', null).get_event_count(), 2, 'storage metrics');
        assertEqual(storage.load_snapshot('s', 'p', null), null, 'no snapshot');
        assert(storage.save_snapshot('s', 'p', 2, new GLib.Bytes(encoder.encode('x')), null),
            'save_snapshot');
        assertEqual(storage.load_snapshot('s', 'p', null).get_version(), 2, 'load_snapshot');
        factory.close(null);
        removeTree(dir);
    },

    'read-only factory'() {
        const [dir, path] = tempDatabase();
        const writer = Es.SqliteStreamFactory.new(path, null);
        writer.open_stream('s', null).write([event('A'), event('B')], Es.VERSION_ANY, null);
        writer.close(null);

        const factory = new Es.SqliteStreamFactory({path, read_only: true});
        assert(factory.init(null), 'init');
        assert(factory.read_only, 'read_only property');
        assert(factory.get_storage().read_only, 'storage read_only property');
        const stream = factory.open_stream('s', null);
        assertEqual(readAll(stream.read(0, null, null)).map(e => e.get_event_type()).join(''),
            'AB', 'read-only read');
        assertEqual(stream.get_metrics(null).get_event_count(), 2, 'read-only metrics');
        const e = assertThrowsEs(() => stream.write([event('C')], Es.VERSION_ANY, null),
            Es.Error.INVALID_ARGUMENT, 'read-only write');
        assert(e.message.includes('read-only'), `message says read-only: ${e.message}`);
        assertThrowsEs(() => stream.snapshot(new GLib.Bytes(encoder.encode('x')), 1, 'p', null),
            Es.Error.INVALID_ARGUMENT, 'read-only snapshot');
        factory.close(null);

        const missing = new Es.SqliteStreamFactory({
            path: GLib.build_filenamev([dir, 'missing.db']),
            read_only: true,
        });
        assertThrowsEs(() => missing.init(null), Es.Error.STORAGE, 'read-only missing file');
        assert(!GLib.file_test(GLib.build_filenamev([dir, 'missing.db']), GLib.FileTest.EXISTS),
            'missing file not created');
        removeTree(dir);
    },

    'storage notifier subclass'() {
        // A third-party notifier: the base class does the thread, the
        // subscribers, the cursor, delivering and giving up.
        const Looker = GObject.registerClass({GTypeName: 'EsTestLooker'},
            class Looker extends Es.StorageNotifier {});
        const storage = Es.SqliteStorage.new(null, 1, null);
        const notifier = new Looker({storage, give_up_timeout: 50});
        assertEqual(notifier.get_storage(), storage, 'storage');
        assertEqual(notifier.get_give_up_timeout(), 50, 'give-up timeout');
        assertEqual(notifier.get_context(), null, 'no context before start');
        assert(notifier.start(null), 'start');
        assert(notifier.get_context() !== null, 'context once started');
        storage.append('k', Es.VERSION_ANY, [event('A'), event('B')], null);
        assert(notifier.deliver(), 'deliver');
        assertEqual(notifier.get_last_sequence_id(), 2, 'cursor moved');
        notifier.report_success();
        assertEqual(notifier.get_error(), null, 'no error');
        notifier.report_failure('the disk went away');
        const deadline = GLib.get_monotonic_time() + 10000 * 1000;
        while (notifier.get_error() === null && GLib.get_monotonic_time() < deadline)
            GLib.usleep(1000);
        assert(notifier.get_error() !== null, 'gave up');
        assert(notifier.get_error().message.includes('the disk went away'), 'reason kept');
        notifier.changed(); // gave up: does nothing
        notifier.stop();
        storage.close(null);
    },

    'notifier and hand-wired factory'() {
        const storage = Es.SqliteStorage.new(null, 2, null);
        assertEqual(storage.get_pool_size(), 2, 'pool size');
        const notifier = Es.SqliteNotifier.new(storage, 25);
        assertEqual(notifier.get_polling_interval(), 25, 'polling interval');
        const factory = Es.StreamFactory.new(storage, notifier);
        assertEqual(factory.get_storage(), storage, 'get_storage');
        assertEqual(factory.get_notifier(), notifier, 'get_notifier');
        assert(notifier.start(null), 'start');
        assertEqual(notifier.get_last_sequence_id(), 0, 'nothing delivered');
        // An EsNotifierFunc runs on the notifier's own thread, where GJS
        // refuses to call JavaScript: subscribe and unsubscribe on an empty
        // database, where there is nothing to deliver.
        const id = notifier.subscribe(() => {});
        assert(id !== 0, 'subscription id');
        notifier.unsubscribe(id);
        notifier.committed();
        assertEqual(notifier.get_error(), null, 'a running notifier has no error');

        const stream = factory.open_stream('w', null);
        stream.write([event('A')], Es.VERSION_ANY, null);
        const watch = stream.watch(-1);
        assertEqual(watch.get_stream_id(), 'w', 'watch stream id');
        assert(!watch.get_caught_up() || watch.get_active(), 'caught-up state');
        watch.stop();
        factory.close(null);

        // A factory subclass attaches the backend it opened itself.
        const Attached = GObject.registerClass({GTypeName: 'EsTestAttached'},
            class Attached extends Es.StreamFactory {});
        const attached = new Attached();
        const attachedStorage = Es.SqliteStorage.new(null, 1, null);
        attached.set_backend(attachedStorage, null);
        assertEqual(attached.get_storage(), attachedStorage, 'attached storage');
        attached.open_stream('a', null).write([event('A')], Es.VERSION_ANY, null);
        assert(attached.close(null), 'attached close');

        const memory = Es.SqliteStorage.new(null, 1, null);
        const standalone = Es.SqliteNotifier.new(memory, 10);
        assert(standalone.start(null), 'standalone start');
        standalone.stop();
        assert(memory.close(null), 'storage close');
        assertThrowsEs(() => memory.get_version('s', null), Es.Error.CLOSED, 'closed storage');
    },
});


// Watch contracts (issue 14): nothing after close, watch (-1) misses nothing.
function sleepMs(ms) {
    return new Promise(resolve => GLib.timeout_add(GLib.PRIORITY_DEFAULT, ms, () => {
        resolve();
        return GLib.SOURCE_REMOVE;
    }));
}

async function waitFor(condition, timeoutMs, message) {
    const deadline = GLib.get_monotonic_time() + timeoutMs * 1000;
    while (!condition()) {
        if (GLib.get_monotonic_time() > deadline)
            throw new Error(`timed out: ${message}`);
        // eslint-disable-next-line no-await-in-loop
        await sleepMs(1);
    }
}

Object.assign(tests, {
    async 'close in a handler mid-replay'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        const stream = factory.open_stream('cart-1', null);
        for (let i = 0; i < 5; i++)
            stream.write(Array.from({length: 1000}, () => event('Added')), Es.VERSION_ANY, null);

        let n = 0, after = 0, closed = false;
        const watch = factory.open_stream(Es.ALL_STREAM, null).watch(0);
        watch.connect('event', () => {
            if (closed)
                after++;
            n++;
            if (n === 1500) {
                factory.close(null);
                closed = true;
            }
        });
        await waitFor(() => closed, 30000, 'the 1500th event');
        await sleepMs(300);
        assertEqual(after, 0, 'events after close');
        assertEqual(n, 1500, 'events in all');
        assert(!watch.get_active(), 'inactive after close');
        removeTree(dir);
    },

    async 'close in an idle mid-replay'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        const stream = factory.open_stream('cart-1', null);
        for (let i = 0; i < 5; i++)
            stream.write(Array.from({length: 1000}, () => event('Added')), Es.VERSION_ANY, null);

        let n = 0, after = 0, closed = false;
        const watch = factory.open_stream(Es.ALL_STREAM, null).watch(0);
        watch.connect('event', () => {
            if (closed)
                after++;
            n++;
            if (n === 10) {
                GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
                    // The next page is read meanwhile, ready when the close runs.
                    GLib.usleep(200000);
                    factory.close(null);
                    closed = true;
                    return GLib.SOURCE_REMOVE;
                });
            }
        });
        await waitFor(() => closed, 30000, 'the close');
        await sleepMs(300);
        assertEqual(after, 0, 'events after close');
        assert(n < 5000, `closed mid-replay (${n} events)`);
        assert(!watch.get_active(), 'inactive after close');
        removeTree(dir);
    },

    async 'watch (-1) then another handle writes'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        const other = Es.SqliteStreamFactory.new(path, null);
        const stream = factory.open_stream('race', null);
        const otherStream = other.open_stream('race', null);

        for (let round = 0; round < 200; round++) {
            const seen = [];
            const watch = stream.watch(-1);
            watch.connect('event', (_w, e) => seen.push(e.get_version()));
            assertEqual(otherStream.write([event('Raced')], Es.VERSION_ANY, null), round + 1,
                'written version');
            // eslint-disable-next-line no-await-in-loop
            await waitFor(() => seen.length > 0, 10000, `round ${round}: the event`);
            while (GLib.MainContext.default().iteration(false))
                ;
            assertEqual(seen.join(','), `${round + 1}`, `round ${round}: once`);
            watch.stop();
        }
        other.close(null);
        factory.close(null);
        removeTree(dir);
    },
});

// The stream life cycle (issue 16): the value types here, the operations
// in tests/lifecycle-cases.js (shared with the PostgreSQL tests).
Object.assign(tests, {
    'stream info and stored event flags'() {
        const first = GLib.DateTime.new_utc(2024, 5, 1, 12, 0, 0.25);
        const firstUsec = first.to_unix() * 1000000 + 250000;
        const info = Es.StreamInfo.new('cart-1', Es.StreamState.DELETED, 12, 0, 0, firstUsec,
            firstUsec + 1000000, 90 * GLib.TIME_SPAN_DAY, 1000);
        assertEqual(info.get_stream_id(), 'cart-1', 'stream id');
        assertEqual(info.get_state(), Es.StreamState.DELETED, 'state');
        assertEqual(info.get_current_version(), 12, 'version');
        assertEqual(info.get_event_count(), 0, 'count');
        assertEqual(info.get_first_version(), 0, 'first version');
        assertEqual(info.get_first_timestamp_usec(), firstUsec, 'first usec');
        assertEqual(info.get_last_timestamp_usec(), firstUsec + 1000000, 'last usec');
        assertEqual(info.get_first_timestamp().get_microsecond(), 250000, 'first GDateTime');
        assertEqual(info.get_last_timestamp().get_second(), 1, 'last GDateTime');
        assertEqual(info.get_max_age(), 90 * GLib.TIME_SPAN_DAY, 'max age');
        assertEqual(info.get_max_count(), 1000, 'max count');
        assertEqual(info.stream_id, 'cart-1', 'property');
        assertEqual(Es.StreamInfo.new('x', 0, 0, 0, 0, 0, 0, 0, 0).get_first_timestamp(), null,
            'no timestamp');

        const erased = Es.StoredEvent.new_full('s', 4, 2, first, 'Visit', null, 'k', null,
            Es.StoredEventFlags.ERASED);
        assertEqual(erased.get_flags(), Es.StoredEventFlags.ERASED, 'flags');
        assert(erased.get_erased(), 'erased');
        assertEqual(erased.flags, Es.StoredEventFlags.ERASED, 'flags property');
        assertEqual(erased.get_idempotency_key(), 'k', 'key kept');
        const plain = Es.StoredEvent.new('s', 1, 1, first, 'T', null, null, null);
        assertEqual(plain.get_flags(), Es.StoredEventFlags.NONE, 'no flags');
        assert(!plain.get_erased(), 'not erased');
        assertEqual(Es.READ_FROM_END, -1, 'READ_FROM_END');
        assert(Es.Error.STREAM_DELETED !== Es.Error.NOT_FOUND, 'new error codes');
    },
});

const sqliteEnv = {
    newFactory() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        factory._dir = dir;
        return factory;
    },
    secondFactory(factory) {
        return Es.SqliteStreamFactory.new(factory.get_path(), null);
    },
    cleanup(factory) {
        factory.close(null);
        removeTree(factory._dir);
    },
};
Object.assign(tests, lifecycleTests(sqliteEnv));
// Durable subscriptions (issue 17): tests/subscription-cases.js.
Object.assign(tests, subscriptionTests(sqliteEnv));

// EsEventListModel (issue 18): a Gio.ListModel, lazy and live.
Object.assign(tests, {
    async 'event list model'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        const stream = factory.open_stream('shop-1', null);
        stream.write([0, 1, 2, 3, 4].map(i => event('Added', `{"n": ${i}}`)), Es.VERSION_ANY, null);

        const model = Es.EventListModel.new(factory, 'shop-1', null,
            Es.EventListModelFlags.NEWEST_FIRST);
        assert(model.get_loading(), 'loading at first');
        assertEqual(model.get_n_items(), 0, 'empty while counting');
        await waitFor(() => !model.get_loading(), 30000, 'count');
        assertEqual(model.get_n_items(), 5, 'count');
        assertEqual(model.n_items, 5, 'n-items property');
        assert(model.get_item_type() === Es.StoredEvent.$gtype, 'item type');
        const versions = m => Array.from({length: m.get_n_items()}, (_, i) => m.get_item(i).get_version());
        assertEqual(JSON.stringify(versions(model)), JSON.stringify([5, 4, 3, 2, 1]), 'newest first');
        assertEqual(model.get_item(5), null, 'out of range');
        assertEqual(model.get_stream_id(), 'shop-1', 'stream id');
        assert(model.get_factory() === factory, 'factory');
        assertEqual(model.get_filter(), null, 'no filter');
        assertEqual(model.get_flags(), Es.EventListModelFlags.NEWEST_FIRST, 'flags');

        const changes = [];
        model.connect('items-changed', (m, p, r, a) => changes.push([p, r, a]));
        stream.write([event('Removed')], Es.VERSION_ANY, null);
        const other = Es.SqliteStreamFactory.new(path, null);
        other.open_stream('shop-1', null).write([event('Paid')], Es.VERSION_ANY, null);
        await waitFor(() => model.get_n_items() === 7, 30000, 'live events');
        assertEqual(JSON.stringify(changes), JSON.stringify([[0, 0, 1], [0, 0, 1]]), 'inserted at 0, in order');
        assertEqual(model.get_item(0).get_event_type(), 'Paid', 'newest');

        changes.length = 0;
        factory.truncate_stream('shop-1', 3, null);
        await waitFor(() => model.get_n_items() === 5, 30000, 'truncation');
        assertEqual(JSON.stringify(changes), JSON.stringify([[5, 2, 0]]), 'oldest removed');

        other.truncate_stream('shop-1', 5, null);
        model.refresh();
        await waitFor(() => model.get_n_items() === 3 && !model.get_loading(), 30000, 'refresh');
        assertEqual(JSON.stringify(versions(model)), JSON.stringify([7, 6, 5]), 'after refresh');
        other.close(null);

        const filter = Es.EventFilter.new();
        filter.add_like('event_type', 'Pa%');
        const all = Es.EventListModel.new(factory, Es.ALL_STREAM, filter,
            Es.EventListModelFlags.NONE);
        await waitFor(() => !all.get_loading(), 30000, 'filtered count');
        assertEqual(all.get_n_items(), 1, 'filtered');
        assertEqual(all.get_filter(), filter, 'filter');
        assertEqual(factory.get_storage().count_events(null, filter, 0, Number.MAX_SAFE_INTEGER, null), 1,
            'count_events');
        assertEqual(factory.get_storage().locate_event(null, 0, Es.ReadFlags.NONE, filter, 0, null), 7,
            'locate_event');
        assertEqual(factory.get_storage().locate_event('shop-1', 7, Es.ReadFlags.BACKWARDS, null, 1,
            null), 5, 'locate_event backwards');

        factory.close(null);
        await waitFor(() => model.get_n_items() === 0, 30000, 'emptied by close');
        assertEqual(model.get_item(0), null, 'nothing after close');
        removeTree(dir);
    },
});

// Backup, check, export and import (issue 19).
Object.assign(tests, {
    async 'operations'() {
        const [dir, path] = tempDatabase();
        const factory = Es.SqliteStreamFactory.new(path, null);
        factory.open_stream('a', null).write([event('Created', '{"n":1}', 'k1', {who: 'me'}),
            event('Binary', '\u0001not json')], Es.VERSION_ANY, null);

        // Export, synchronously, with progress.
        const out = Gio.MemoryOutputStream.new_resizable();
        const progress = [];
        assertEqual(factory.export_events(out, null, null, Es.ExportFlags.NONE, null,
            (current, total) => progress.push([current, total])), 2, 'exported');
        out.close(null);
        const bytes = out.steal_as_bytes();
        const text = decoder.decode(bytes.toArray());
        assert(text.includes('"metadata":{"who":"me"},"data":{"n":1}}'), 'JSON data and metadata');
        assert(text.includes('"data_base64":"AW5vdCBqc29u"'), 'base64 data');
        assertEqual(JSON.stringify(progress[progress.length - 1]), '[2,2]', 'export progress');

        // Import into another database, then export it again: the same bytes.
        const copyPath = GLib.build_filenamev([dir, 'copy.db']);
        const copy = Es.SqliteStreamFactory.new(copyPath, null);
        assertEqual(copy.import_events(Gio.MemoryInputStream.new_from_bytes(bytes),
            Es.ImportFlags.NONE, null, null), 2, 'imported');
        const again = Gio.MemoryOutputStream.new_resizable();
        copy.export_events(again, 'a', null, Es.ExportFlags.NONE, null, null);
        again.close(null);
        assertEqual(decoder.decode(again.steal_as_bytes().toArray()), text, 'round trip');
        assertThrowsEs(() => copy.import_events(Gio.MemoryInputStream.new_from_bytes(
            new GLib.Bytes(encoder.encode('{bad\n'))), Es.ImportFlags.NONE, null, null),
        Es.Error.INVALID_ARGUMENT, 'bad line');

        // The storage's own import: positions kept.
        const when = GLib.DateTime.new_from_unix_utc(1700000000);
        const [stored] = copy.get_storage().import_events([Es.StoredEvent.new('imp', 0, 3, when, 'T',
            new GLib.Bytes(encoder.encode('x')), null, null)], null);
        assertEqual(stored, 1, 'storage import');
        assertEqual(copy.get_stream_info('imp', null).get_first_version(), 3, 'first version');

        // Check.
        const report = factory.check(Es.CheckFlags.NONE, null, null);
        assert(report.is_ok(), 'healthy');
        assertEqual(report.get_n_problems(), 0, 'no problems');
        const own = Es.CheckReport.new();
        assert(factory.get_storage().check(Es.CheckFlags.QUICK, own, null, null), 'storage check');
        own.add_problem(Es.CheckProblemKind.DUPLICATE_KEY, 'a', 2, 'Duplicate');
        assert(!own.is_ok(), 'not ok');
        assertEqual(own.get_problem_kind(0), Es.CheckProblemKind.DUPLICATE_KEY, 'kind');
        assertEqual(own.get_problem_stream_id(0), 'a', 'stream id');
        assertEqual(own.get_problem_version(0), 2, 'version');
        assertEqual(own.get_problem_message(0), 'Duplicate', 'message');
        assert(own.has_problem(Es.CheckProblemKind.DUPLICATE_KEY), 'has_problem');

        // Backup, synchronous and through the storage.
        const backupPath = GLib.build_filenamev([dir, 'backup.db']);
        assert(factory.backup(Gio.File.new_for_path(backupPath), Es.BackupFlags.NONE, null, null),
            'backup');
        try {
            factory.get_storage().backup(Gio.File.new_for_path(backupPath), Es.BackupFlags.NONE,
                null, null);
            assert(false, 'existing destination accepted');
        } catch (e) {
            assert(e.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.EXISTS), `exists: ${e.message}`);
        }

        // The asynchronous twins, progress in this thread.
        const asyncProgress = [];
        const asyncBackup = GLib.build_filenamev([dir, 'async.db']);
        await new Promise((resolve, reject) => factory.backup_async(Gio.File.new_for_path(asyncBackup),
            Es.BackupFlags.NONE, null, (current, total) => asyncProgress.push([current, total]),
            (source, result) => {
                try {
                    resolve(source.backup_finish(result));
                } catch (e) {
                    reject(e);
                }
            }));
        assert(GLib.file_test(asyncBackup, GLib.FileTest.EXISTS), 'async backup');
        assert(asyncProgress.length > 0, 'async progress');
        const asyncReport = await new Promise(resolve => factory.check_async(Es.CheckFlags.NONE,
            null, null, (source, result) => resolve(source.check_finish(result))));
        assert(asyncReport.is_ok(), 'async check');
        const asyncOut = Gio.MemoryOutputStream.new_resizable();
        const exported = await new Promise(resolve => factory.export_events_async(asyncOut, 'a', null,
            Es.ExportFlags.DATA_BASE64, null, null,
            (source, result) => resolve(source.export_events_finish(result))));
        assertEqual(exported, 2, 'async export');
        asyncOut.close(null);
        const third = Es.SqliteStreamFactory.new(GLib.build_filenamev([dir, 'third.db']), null);
        const imported = await new Promise(resolve => third.import_events_async(
            Gio.MemoryInputStream.new_from_bytes(asyncOut.steal_as_bytes()), Es.ImportFlags.NONE,
            null, null, (source, result) => resolve(source.import_events_finish(result))));
        assertEqual(imported, 2, 'async import');

        third.close(null);
        copy.close(null);
        factory.close(null);
        removeTree(dir);
    },
});

const loop = new GLib.MainLoop(null, false);
let failed = 0;
let passed = 0;

(async () => {
    for (const [name, test] of Object.entries(tests)) {
        try {
            await test();
            passed++;
            print(`ok - ${name}`);
        } catch (e) {
            failed++;
            print(`not ok - ${name}: ${e.message}\n${e.stack ?? ''}`);
        }
    }
    print(`${passed} passed, ${failed} failed`);
    loop.quit();
})();

loop.run();
System.exit(failed === 0 ? 0 : 1);
