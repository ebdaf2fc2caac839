// test-es-async.js: es-glib from GJS with async/await, through the
// promisifyAll() helper (introspection/gjs/es-async.js). Run with `gjs -m`.
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import Es from 'gi://Es?version=1.0';
import System from 'system';
import {promisifyAll} from '../introspection/gjs/es-async.js';

function assert(condition, message) {
    if (!condition)
        throw new Error(`assertion failed: ${message}`);
}

function assertEqual(actual, expected, message) {
    if (actual !== expected)
        throw new Error(`${message}: expected ${expected}, got ${actual}`);
}

async function assertRejects(promise, domain, code, message) {
    try {
        await promise;
    } catch (e) {
        assert(e instanceof GLib.Error, `${message}: a GLib.Error, not ${e}`);
        assert(e.matches(domain, code), `${message}: ${e.domain}/${e.code} ${e.message}`);
        return;
    }
    throw new Error(`${message}: no error`);
}

const event = (type, data = '') => new Es.CandidateEvent({
    event_type: type,
    data: new GLib.Bytes(new TextEncoder().encode(data)),
});

async function main() {
    const pairs = promisifyAll(Es);
    for (const pair of ['SqliteStreamFactory.new_async', 'StreamFactory.open_stream_async',
        'StreamFactory.close_async', 'Stream.write_async', 'Stream.read_async',
        'Stream.snapshot_async', 'Stream.load_snapshot_async', 'Stream.get_metrics_async',
        'EventEnumerator.next_batch_async', 'StorageHandle.append_async',
        // The stream life cycle (since 0.2).
        'StreamFactory.list_streams_async', 'StreamFactory.get_stream_info_async',
        'StreamFactory.delete_stream_async', 'StreamFactory.truncate_stream_async',
        'StreamFactory.erase_event_async', 'StreamFactory.set_retention_async',
        'StreamFactory.sweep_async', 'StreamFactory.compact_async',
        'StreamInfoEnumerator.next_batch_async', 'Stream.read_backwards_async'])
        assert(pairs.includes(pair), `${pair} promisified`);

    const dir = GLib.dir_make_tmp('es-gjs-async-XXXXXX');
    const path = GLib.build_filenamev([dir, 'events.db']);
    const factory = await Es.SqliteStreamFactory.new_async(path, null);
    const stream = await factory.open_stream_async('counter', null);
    const events = [];
    for (let n = 1; n <= 2500; n++)
        events.push(event('Incremented', `${n}`));
    assertEqual(await stream.write_async(events, Es.VERSION_NO_STREAM, null), 2500, 'write');

    // for await: pages of next_batch_async underneath.
    let sum = 0, count = 0;
    const decoder = new TextDecoder();
    for await (const stored of await stream.read_async(0, null, null)) {
        sum += Number(decoder.decode(stored.get_data().toArray()));
        count++;
    }
    assertEqual(count, 2500, 'events read');
    assertEqual(sum, 2500 * 2501 / 2, 'their data');

    const filter = Es.EventFilter.new();
    filter.add_equals('version', new GLib.Variant('x', 7));
    const all = await factory.open_stream_async(Es.ALL_STREAM, null);
    const found = [];
    for await (const stored of await all.read_async(0, filter, null))
        found.push(stored.get_sequence_id());
    assertEqual(found.join(), '7', 'filtered @all');

    assert(await stream.snapshot_async(new GLib.Bytes(new TextEncoder().encode('s')), -1, null, null),
        'snapshot');
    assertEqual((await stream.load_snapshot_async(null, null)).get_version(), 2500, 'snapshot version');
    assertEqual((await stream.get_metrics_async(null)).get_event_count(), 2500, 'metrics');
    // GJS drops the boolean of a throwing function: the out version only.
    const [version] = await factory.get_storage().append_async('direct', 0, [event('D')], null);
    assertEqual(version, 1, 'append');

    await assertRejects(stream.write_async([event('Late')], 3, null),
        Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION, 'wrong expected version');
    const cancellable = new Gio.Cancellable();
    cancellable.cancel();
    await assertRejects(stream.get_metrics_async(cancellable),
        Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED, 'cancelled');

    // The listing and newest-first reads are async-iterable too.
    const listed = [];
    for await (const info of await factory.list_streams_async(null, Es.ListStreamsFlags.NONE, null))
        listed.push(`${info.get_stream_id()}:${info.get_event_count()}`);
    assertEqual(listed.join(), 'counter:2500,direct:1', 'for await over the listing');
    const newest = [];
    for await (const stored of await stream.read_backwards_async(Es.READ_FROM_END, null, null)) {
        newest.push(stored.get_version());
        if (newest.length === 3)
            break;
    }
    assertEqual(newest.join(), '2500,2499,2498', 'newest first');
    assert(await factory.delete_stream_async('direct', 1, Es.DeleteFlags.TOMBSTONE, null),
        'tombstone');
    await assertRejects(factory.get_storage().append_async('direct', -1, [event('D')], null),
        Es.error_quark(), Es.Error.STREAM_DELETED, 'tombstoned');

    assert(await factory.close_async(null), 'close');
    await assertRejects(factory.open_stream_async('x', null),
        Es.error_quark(), Es.Error.CLOSED, 'closed');
    GLib.unlink(path);
    for (const suffix of ['-wal', '-shm'])
        GLib.unlink(path + suffix);
    GLib.rmdir(dir);
}

const loop = new GLib.MainLoop(null, false);
let failure = null;
main().catch(e => {
    failure = e;
}).finally(() => loop.quit());
loop.run();
if (failure) {
    logError(failure);
    System.exit(1);
}
print('ok - es-glib with async/await from GJS');
