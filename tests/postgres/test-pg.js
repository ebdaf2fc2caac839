// test-pg.js: the PostgreSQL backend from GJS, through the typelib. Run
// with `gjs -m` (meson test 'pg-gjs'). It starts a throwaway server
// (es-pg-test-server.js, through build-aux/pg-test-server, whose path is in
// ES_PG_TEST_SERVER) unless ES_TEST_PG_CONNINFO names one, and stops it at
// the end; without a server it says why and exits with 77 (meson's
// "skipped").
//
// Every PostgreSQL callable of Es-1.0.gir is called here at least once
// (tests/bindings/check-coverage.py checks it), with its properties.
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import Es from 'gi://Es?version=1.0';
import EsPg from 'gi://EsPg?version=1.0';
import System from 'system';

import {PgTestServer} from './es-pg-test-server.js';
import {lifecycleTests} from '../lifecycle-cases.js';
import {subscriptionTests} from '../subscription-cases.js';

const SERVER = new PgTestServer();
const CONNINFO = SERVER.start();
const OWN_SERVER = SERVER.own;
const PASSWORD = 'Pw-s3cret-42';
const TIMEOUT_MS = 20000;
const PID = new Gio.Credentials().get_unix_pid();

if (CONNINFO === null) {
    SERVER.stop();
    print(`SKIP: ${SERVER.reason}`);
    System.exit(77);
}

Gio._promisify(EsPg.StreamFactory, 'new_async', 'new_finish');
Gio._promisify(EsPg.StreamFactory.prototype, 'init_async', 'init_finish');
Gio._promisify(Es.Stream.prototype, 'write_async', 'write_finish');
Gio._promisify(Es.Stream.prototype, 'read_async', 'read_finish');
Gio._promisify(Es.StreamFactory.prototype, 'close_async', 'close_finish');

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let schemaCounter = 0;

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
        assert(e instanceof GLib.Error, `${message}: not a GLib.Error: ${e}`);
        assert(e.matches(Es.error_quark(), code), `${message}: wrong error ${e.message}`);
        return e;
    }
    throw new Error(`${message}: no error`);
}

function freshSchema() {
    schemaCounter++;
    return `es_gjs_${PID}_${schemaCounter}`;
}

function newFactory(schema, poolSize = 2) {
    const factory = new EsPg.StreamFactory({conninfo: CONNINFO, schema, pool_size: poolSize});
    factory.init(null);
    return factory;
}

function event(type, data = '', key = null, metadata = null) {
    const candidate = Es.CandidateEvent.new(type, new GLib.Bytes(encoder.encode(data)));
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

function withTimeout(promise, what) {
    let id = 0;
    const timeout = new Promise((_resolve, reject) => {
        id = GLib.timeout_add(GLib.PRIORITY_DEFAULT, TIMEOUT_MS, () => {
            reject(new Error(`${what}: timed out`));
            return GLib.SOURCE_REMOVE;
        });
    });
    return Promise.race([promise, timeout]).finally(() => GLib.source_remove(id));
}

const tests = {
    'construction, getters and properties'() {
        const schema = freshSchema();
        const factory = newFactory(schema, 3);
        assert(factory instanceof EsPg.StreamFactory, 'a PgStreamFactory');
        assert(factory instanceof Es.StreamFactory, 'a StreamFactory');
        assertEqual(factory.get_conninfo(), CONNINFO, 'get_conninfo');
        assertEqual(factory.get_schema(), schema, 'get_schema');
        assertEqual(factory.conninfo, CONNINFO, 'conninfo property');
        assertEqual(factory.schema, schema, 'schema property');
        assertEqual(factory.pool_size, 3, 'pool-size property');

        const storage = factory.get_storage();
        assert(storage instanceof EsPg.Storage, 'a PgStorage');
        assertEqual(storage.get_conninfo(), CONNINFO, 'storage get_conninfo');
        assertEqual(storage.get_schema(), schema, 'storage get_schema');
        assertEqual(storage.get_pool_size(), 3, 'storage get_pool_size');
        assertEqual(storage.conninfo, CONNINFO, 'storage conninfo property');
        assertEqual(storage.schema, schema, 'storage schema property');
        assertEqual(storage.pool_size, 3, 'storage pool-size property');

        const notifier = factory.get_notifier();
        assert(notifier instanceof EsPg.Notifier, 'a PgNotifier');
        assertEqual(notifier.storage, storage, 'notifier storage property');
        factory.close(null);
    },

    'default schema'() {
        if (!OWN_SERVER) {
            print('# skipped: uses the default schema, only on our own server');
            return;
        }
        const factory = EsPg.StreamFactory.new(CONNINFO, null);
        assertEqual(factory.get_schema(), 'es_glib', 'default schema');
        assertEqual(factory.pool_size, 4, 'default pool size');
        factory.close(null);
    },

    async 'async construction'() {
        if (OWN_SERVER) {
            const factory = await EsPg.StreamFactory.new_async(CONNINFO, null);
            assertEqual(factory.get_schema(), 'es_glib', 'new_async: default schema');
            await factory.close_async(null);
        }
        await assertRejectsEs(EsPg.StreamFactory.new_async('host=/nonexistent port=1', null),
            Es.Error.STORAGE, 'new_async with a bad conninfo');

        const schema = freshSchema();
        const factory = new EsPg.StreamFactory({conninfo: CONNINFO, schema, pool_size: 1});
        assert(await factory.init_async(GLib.PRIORITY_DEFAULT, null), 'init_async');
        const stream = factory.open_stream('async', null);
        assertEqual(await stream.write_async([event('A'), event('B')], Es.VERSION_NO_STREAM, null),
            2, 'write_async');
        const enumerator = await stream.read_async(0, null, null);
        assertEqual(readAll(enumerator).length, 2, 'read_async');
        await factory.close_async(null);
    },

    'write and read round trip'() {
        const factory = newFactory(freshSchema());
        const stream = factory.open_stream('cart-1', null);
        const version = stream.write([
            event('Added', 'apple', 'k1', {user: 'ada', n: 1}),
            event('Added', 'pear'),
        ], Es.VERSION_NO_STREAM, null);
        assertEqual(version, 2, 'new version');
        assertEqual(stream.version, 2, 'version property');

        const [first, second] = readAll(stream.read(0, null, null));
        assertEqual(first.get_id(), 'k1', 'id is the idempotency key');
        assertEqual(first.get_stream_id(), 'cart-1', 'stream id');
        assertEqual(first.get_version(), 1, 'version');
        assert(second.get_sequence_id() > first.get_sequence_id(), 'sequence ids increase');
        assertEqual(decoder.decode(first.get_data().toArray()), 'apple', 'data');
        assertEqual(JSON.parse(first.get_metadata()).user, 'ada', 'metadata');
        assertEqual(second.get_metadata(), null, 'no metadata');

        assertEqual(stream.write([event('Added', 'again', 'k1')], Es.VERSION_ANY, null), 2,
            'idempotent retry');
        const filter = Es.EventFilter.new();
        filter.add_equals('metadata.n', new GLib.Variant('x', 1));
        assertEqual(readAll(stream.read(0, filter, null)).length, 1, 'jsonb filter');
        assertEqual(readAll(factory.open_stream(Es.ALL_STREAM, null).read(0, null, null)).length,
            2, '@all');
        factory.close(null);
    },

    'wrong expected version'() {
        const schema = freshSchema();
        const factory = newFactory(schema);
        const other = newFactory(schema, 1);
        const stream = factory.open_stream('cart-2', null);
        stream.write([event('A')], Es.VERSION_ANY, null);
        const error = assertThrowsEs(() => stream.write([event('B')], 5, null),
            Es.Error.WRONG_EXPECTED_VERSION, 'stale version');
        assert(error.message.includes('cart-2'), 'message names the stream');
        assertThrowsEs(() => other.open_stream('cart-2', null).write([event('C')], 0, null),
            Es.Error.WRONG_EXPECTED_VERSION, 'from another connection');
        other.close(null);
        factory.close(null);
    },

    'bad connection strings and schema names'() {
        for (const conninfo of ['host=/nonexistent port=1', 'not a conninfo ===',
            `postgresql://es:${PASSWORD}@[::1:1/x`]) {
            const error = assertThrowsEs(() => EsPg.StreamFactory.new(conninfo, null),
                Es.Error.STORAGE, `factory on '${conninfo}'`);
            assert(!error.message.includes(PASSWORD), `no password in '${error.message}'`);
            assertThrowsEs(() => EsPg.Storage.new(conninfo, 'es_gjs_bad', 1, null),
                Es.Error.STORAGE, `storage on '${conninfo}'`);
        }
        const error = assertThrowsEs(() => newFactory('Not-Valid'),
            Es.Error.INVALID_ARGUMENT, 'invalid schema');
        assert(error.message.includes('Not-Valid'), 'message names the schema');
    },

    async 'watch through LISTEN/NOTIFY'() {
        const schema = freshSchema();
        const factory = newFactory(schema);
        const writer = newFactory(schema, 1);
        const stream = factory.open_stream('live', null);
        stream.write([event('Old')], Es.VERSION_ANY, null);
        const remote = writer.open_stream('live', null);

        const seen = [];
        let caughtUp = 0;
        const watch = stream.watch(0);
        await withTimeout(new Promise((resolve, reject) => {
            watch.connect('event', (_w, e) => {
                seen.push(`${e.get_version()}:${e.get_event_type()}`);
                if (seen.length === 3)
                    resolve();
            });
            watch.connect('caught-up', () => {
                caughtUp++;
                // Another factory writes: only the NOTIFY can wake this one.
                remote.write([event('New1'), event('New2')], Es.VERSION_ANY, null);
            });
            watch.connect('error', (_w, error) => reject(error));
        }), 'watch');
        assertEqual(caughtUp, 1, 'caught-up once');
        assertEqual(seen.join(','), '1:Old,2:New1,3:New2', 'history then live');
        assertEqual(watch.get_last_version(), 3, 'last version');
        watch.stop();
        assert(!watch.get_active(), 'stopped');
        writer.close(null);
        factory.close(null);
    },

    'hand-wired storage and notifier'() {
        const schema = freshSchema();
        const storage = EsPg.Storage.new(CONNINFO, schema, 2, null);
        assertEqual(storage.get_schema(), schema, 'storage schema');
        const notifier = EsPg.Notifier.new(storage);
        assertEqual(notifier.storage, storage, 'notifier storage');
        assert(notifier.start(null), 'notifier start');
        const factory = Es.StreamFactory.new(storage, notifier);
        const stream = factory.open_stream('wired', null);
        assertEqual(stream.write([event('A')], Es.VERSION_ANY, null), 1, 'write');
        assertEqual(storage.get_version('wired', null)[1], 1, 'storage version');
        factory.close(null);
        assertThrowsEs(() => storage.get_version('wired', null), Es.Error.CLOSED,
            'closed with the factory');
        assertThrowsEs(() => stream.write([event('B')], -1, null), Es.Error.CLOSED,
            'stream closed');
    },
};

// The stream life cycle (issue 16), as on SQLite (tests/lifecycle-cases.js).
const pgEnv = {
    newFactory: () => newFactory(freshSchema()),
    secondFactory: factory => newFactory(factory.get_schema()),
    cleanup: factory => factory.close(null),
};
Object.assign(tests, lifecycleTests(pgEnv));
// Durable subscriptions (issue 17), as on SQLite (tests/subscription-cases.js).
Object.assign(tests, subscriptionTests(pgEnv));

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
SERVER.stop();
System.exit(failed === 0 ? 0 : 1);
