# es_pg_test_server.py: the PostgreSQL server of the Python tests, started
# on first use as GTestDBus starts a bus (the C tests have the same in
# tests/es-test-utils.c, GJS in es-pg-test-server.js).
#
# start() runs `$ES_PG_TEST_SERVER guard DIR` (build-aux/pg-test-server,
# its path set by meson) on a new temporary directory, in a session of its
# own: it starts the server there and prints its connection string, which
# start() puts in ES_TEST_PG_CONNINFO (and DIR in ES_TEST_PG_DIR). When its
# standard input, which only this process holds, ends (stop(), or this
# process is gone, even after a crash or a kill), it stops the server and
# removes DIR. With ES_TEST_PG_CONNINFO already set, that server is used.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import shutil
import subprocess
import tempfile


class PgTestServer:
    def __init__(self):
        self.conninfo = None
        self.reason = None
        self.own = False    # a server of our own, which tests may restart
        self._guard = None
        self._set_env = []

    def start(self):
        """Starts the server, or finds one; returns its connection string,
        or None with self.reason saying why there is none."""
        conninfo = os.environ.get("ES_TEST_PG_CONNINFO")
        if conninfo:
            self.conninfo = conninfo
            self.own = "ES_TEST_PG_DIR" in os.environ
            return conninfo
        script = os.environ.get("ES_PG_TEST_SERVER")
        if not script:
            self.reason = ("Neither ES_TEST_PG_CONNINFO nor ES_PG_TEST_SERVER (the path of "
                           "build-aux/pg-test-server) is set: no PostgreSQL server")
            return None

        directory = tempfile.mkdtemp(prefix="es-pg-")
        # The guard starts the server, says how on one line, and stops and
        # removes it when its standard input (ours only) ends.
        self._guard = subprocess.Popen([script, "guard", directory], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True,
                                       start_new_session=True)
        line = self._guard.stdout.readline().strip()
        self._guard.stdout.close()
        if not line or line.startswith("error: "):
            self.reason = ("Could not start a PostgreSQL server: "
                           + (line[len("error: "):] or "the guard said nothing"))
            if not line:
                # The guard died: the directory is ours to remove.
                self._guard.wait()
                shutil.rmtree(directory, ignore_errors=True)
            return None
        self.conninfo = line
        self.own = True
        for name, value in (("ES_TEST_PG_CONNINFO", self.conninfo),
                            ("ES_TEST_PG_DIR", directory)):
            os.environ[name] = value
            self._set_env.append(name)
        return self.conninfo

    def stop(self):
        """Stops and removes the server we started, and waits for that."""
        if self._guard is not None:
            self._guard.stdin.close()
            self._guard.wait()
            self._guard = None
        for name in self._set_env:
            os.environ.pop(name, None)
        self._set_env = []
