// es-pg-test-server.js: the PostgreSQL server of the GJS tests, started on
// first use as GTestDBus starts a bus (the C tests have the same in
// tests/es-test-utils.c, Python in es_pg_test_server.py).
//
// start() runs `$ES_PG_TEST_SERVER guard DIR` (build-aux/pg-test-server,
// its path set by meson) on a new temporary directory, in a session of its
// own: it starts the server there and prints its connection string, which
// start() puts in ES_TEST_PG_CONNINFO (and DIR in ES_TEST_PG_DIR). When its
// standard input, which only this process holds, ends (stop(), or this
// process is gone, even after a crash or a kill), it stops the server and
// removes DIR. With ES_TEST_PG_CONNINFO already set, that server is used.
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
        // The guard starts the server, says how on one line, and stops and
        // removes it when its standard input (ours only) ends. setsid(1):
        // signals to our process group must not stop it first.
        this._guard = Gio.Subprocess.new(['setsid', script, 'guard', dir],
            Gio.SubprocessFlags.STDIN_PIPE | Gio.SubprocessFlags.STDOUT_PIPE);
        const output = new Gio.DataInputStream({base_stream: this._guard.get_stdout_pipe()});
        const [line] = output.read_line_utf8(null);
        output.close(null);
        if (line === null || line.startsWith('error: ')) {
            const why = line === null ? 'the guard said nothing' : line.slice('error: '.length);
            this.reason = `Could not start a PostgreSQL server: ${why.trim()}`;
            if (line === null) {
                // The guard died: the directory is ours to remove.
                this._guard.wait(null);
                this._guard = null;
                GLib.spawn_command_line_sync(`rm -rf ${GLib.shell_quote(dir)}`);
            }
            return null;
        }
        this.conninfo = line.trim();
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
