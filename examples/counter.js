// counter.js: the counter of examples/demo.c, in JavaScript (GJS).
//
// Writes Incremented/Decremented events, rebuilds the count from them,
// snapshots it, and restores from the snapshot.
// Run: gjs -m examples/counter.js
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Es from 'gi://Es?version=1.0';
import System from 'system';

const toBytes = value => new GLib.Bytes(new TextEncoder().encode(JSON.stringify(value)));
const fromBytes = bytes => JSON.parse(new TextDecoder().decode(bytes.toArray()));

function change(eventType, by) {
    return new Es.CandidateEvent({event_type: eventType, data: toBytes({by})});
}

// Applies the events after afterVersion; returns [value, version].
function replay(stream, value, afterVersion) {
    const events = stream.read(afterVersion, null, null);
    let version = afterVersion;
    for (let e = events.next(null); e !== null; e = events.next(null)) {
        const {by} = fromBytes(e.get_data());
        value += e.get_event_type() === 'Incremented' ? by : -by;
        version = e.get_version();
    }
    return [value, version];
}

const dir = GLib.dir_make_tmp('es-counter-XXXXXX');
const path = GLib.build_filenamev([dir, 'events.db']);
const factory = Es.SqliteStreamFactory.new(path, null);
const stream = factory.open_stream('counter-1', null);

stream.write([change('Incremented', 2), change('Incremented', 5), change('Decremented', 1)],
    Es.VERSION_NO_STREAM, null);
let [value, version] = replay(stream, 0, 0);
print(`counter = ${value} at version ${version}`);

stream.snapshot(toBytes({value}), version, 'counter', null);
stream.write([change('Incremented', 10)], version, null);

const snapshot = stream.load_snapshot('counter', null);
[value, version] = replay(stream, fromBytes(snapshot.get_state()).value, snapshot.get_version());
print(`from the snapshot at version ${snapshot.get_version()}: counter = ${value} at version ${version}`);
factory.close(null);

for (const name of ['events.db', 'events.db-wal', 'events.db-shm'])
    GLib.unlink(GLib.build_filenamev([dir, name]));
GLib.rmdir(dir);
System.exit(value === 16 && version === 4 ? 0 : 1);
