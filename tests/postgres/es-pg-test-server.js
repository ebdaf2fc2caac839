// es-pg-test-server.js: the PostgreSQL server of the GJS tests, started on
// first use as GTestDBus starts a bus (the C tests have the same in
// tests/es-test-utils.c, Python in es_pg_test_server.py).
//
// start() runs `$ES_PG_TEST_SERVER start DIR` (build-aux/pg-test-server,
// its path set by meson) in a new temporary directory and sets
// ES_TEST_PG_CONNINFO and ES_TEST_PG_DIR; stop() stops it and removes the
// directory. A guard process (`pg-test-server guard DIR`, in a session of
// its own) does the same when this process is gone, even after a crash or
// a kill. With ES_TEST_PG_CONNINFO already set, that server is used.
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';

export class PgTestServer {
    constructor() {
        this.conninfo = null;
        this.reason = null;
        this.own = false; // a server of our own, which tests may restart
        this._guard = null;
    }

    // The connection string, or null with this.reason saying why.
    start() {
        const conninfo = GLib.getenv('ES_TEST_PG_CONNINFO');
        if (conninfo !== null) {
            this.conninfo = conninfo;
            this.own = GLib.getenv('ES_TEST_PG_DIR') !== null;
            return conninfo;
        }
        const script = GLib.getenv('ES_PG_TEST_SERVER');
        if (script === null) {
            this.reason = 'Neither ES_TEST_PG_CONNINFO nor ES_PG_TEST_SERVER (the path of ' +
                'build-aux/pg-test-server) is set: no PostgreSQL server';
            return null;
        }

        const dir = GLib.dir_make_tmp('es-pg-XXXXXX');
        // The guard first: from now on, the directory goes away with us.
        // setsid(1): signals to our process group must not stop it first.
        this._guard = Gio.Subprocess.new(['setsid', script, 'guard', dir],
            Gio.SubprocessFlags.STDIN_PIPE | Gio.SubprocessFlags.STDOUT_SILENCE);
        const start = Gio.Subprocess.new([script, 'start', dir],
            Gio.SubprocessFlags.STDOUT_PIPE | Gio.SubprocessFlags.STDERR_PIPE);
        const [, out, err] = start.communicate_utf8(null, null);
        if (!start.get_successful()) {
            this.reason = `Could not start a PostgreSQL server: ${err.trim().replace(/\s+/g, ' ')}`;
            return null;
        }
        this.conninfo = out.trim();
        this.own = true;
        GLib.setenv('ES_TEST_PG_CONNINFO', this.conninfo, true);
        GLib.setenv('ES_TEST_PG_DIR', dir, true);
        return this.conninfo;
    }

    // Stops and removes the server we started, and waits for that.
    stop() {
        if (this._guard === null)
            return;
        this._guard.get_stdin_pipe().close(null);
        this._guard.wait(null);
        this._guard = null;
    }
}
