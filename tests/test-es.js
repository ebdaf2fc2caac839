// test-es.js: es-glib from GJS, through the typelib. Run with `gjs -m`.
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import Es from 'gi://Es?version=1.0';
import System from 'system';

Gio._promisify(Es.Stream.prototype, 'write_async', 'write_finish');
Gio._promisify(Es.Stream.prototype, 'read_async', 'read_finish');
Gio._promisify(Es.Stream.prototype, 'snapshot_async', 'snapshot_finish');
Gio._promisify(Es.Stream.prototype, 'load_snapshot_async', 'load_snapshot_finish');
Gio._promisify(Es.Stream.prototype, 'get_metrics_async', 'get_metrics_finish');
Gio._promisify(Es.StreamFactory.prototype, 'open_stream_async', 'open_stream_finish');
Gio._promisify(Es.StreamFactory.prototype, 'close_async', 'close_finish');
Gio._promisify(Es.EventEnumerator.prototype, 'next_batch_async', 'next_batch_finish');
Gio._promisify(Es.SqliteStreamFactory, 'new_async', 'new_finish');

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
