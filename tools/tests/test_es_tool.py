#!/usr/bin/python3
# test_es_tool.py: end-to-end tests of the built es-tool: the exact text
# it prints (times replaced by <TIME>), its exit codes and its messages on
# stderr. Run by meson (suite "tools") with ES_TOOL and ES_TOOL_FIXTURE set.
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

TOOL = os.environ['ES_TOOL']
FIXTURE = os.environ['ES_TOOL_FIXTURE']
SRCDIR = os.environ.get('ES_TOOL_SRCDIR', '')
HAS_POSTGRES = os.environ.get('ES_TOOL_HAS_POSTGRES') == '1'

TIME_RE = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z')


def norm(text):
    return TIME_RE.sub('<TIME>', text)


def run(*args, env=None, input=None):
    full_env = dict(os.environ)
    full_env.pop('NO_COLOR', None)
    if env:
        full_env.update(env)
    return subprocess.run([TOOL] + list(args), capture_output=True, text=True,
                          env=full_env, input=input, timeout=120)


class LineReader:
    """The lines of a child's stdout, each waited for at most 60 s (a
    tail that prints nothing fails the test rather than hanging it)."""

    def __init__(self, stream):
        self.stream = stream
        self.lines = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def close(self):
        self.thread.join(timeout=60)
        self.stream.close()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line)
        self.lines.put('')

    def readline(self):
        return self.lines.get(timeout=60)


def fixture(*args):
    subprocess.run([FIXTURE] + list(args), check=True, capture_output=True, timeout=120)


class ToolTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='es-tool-test-')
        self.db = os.path.join(self.dir, 'events.db')
        fixture('create', self.db)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def assertRun(self, args, stdout=None, code=0, stderr=''):
        result = run(*args)
        self.assertEqual(result.returncode, code,
                         msg='es-tool %s: stdout %r stderr %r' % (' '.join(args), result.stdout, result.stderr))
        if stdout is not None:
            self.assertEqual(norm(result.stdout), stdout)
        if stderr is not None:
            self.assertEqual(result.stderr, stderr)
        return result

    def read_json(self, *args):
        result = self.assertRun(['read', self.db] + list(args) + ['--json'])
        return [json.loads(line) for line in result.stdout.splitlines()]


class InspectTests(ToolTestCase):
    def test_info(self):
        fixture('subscribe', self.db, 'projector', '@all', '0')
        size = os.path.getsize(self.db)
        self.assertRun(['info', self.db],
                       'Backend:           SQLite\n'
                       'Location:          %s\n'
                       'File size:         %d\n'
                       'Streams:           3\n'
                       'Deleted streams:   0\n'
                       'Events:            6\n'
                       'Last sequence id:  6\n'
                       'Subscriptions:     1\n' % (self.db, size))
        result = self.assertRun(['info', '--json', self.db])
        self.assertEqual(json.loads(result.stdout),
                         {'backend': 'sqlite', 'location': self.db, 'file_size': size,
                          'streams': 3, 'deleted_streams': 0, 'events': 6,
                          'last_sequence_id': 6, 'subscriptions': 1})

    def test_inspection_is_read_only(self):
        before = sorted(os.listdir(self.dir))
        with open(self.db, 'rb') as f:
            content = f.read()
        for args in (['info', self.db], ['streams', self.db], ['read', self.db, '@all'],
                     ['tail', self.db, '@all'], ['subscriptions', self.db]):
            self.assertRun(args)
        with open(self.db, 'rb') as f:
            self.assertEqual(f.read(), content)
        self.assertEqual(sorted(os.listdir(self.dir)), before)

    def test_streams(self):
        self.assertRun(['streams', self.db],
                       'STREAM   STATE   VERSION  EVENTS  FIRST  LAST WRITE\n'
                       'cart-1   active  3        3       1      <TIME>\n'
                       'order-7  active  2        2       1      <TIME>\n'
                       'user-3   active  1        1       1      <TIME>\n')
        self.assertRun(['streams', '--prefix', 'cart', self.db],
                       'STREAM  STATE   VERSION  EVENTS  FIRST  LAST WRITE\n'
                       'cart-1  active  3        3       1      <TIME>\n')
        self.assertRun(['streams', '--names-only', self.db], 'cart-1\norder-7\nuser-3\n')
        result = self.assertRun(['streams', '--json', '-p', 'order', self.db])
        line = json.loads(result.stdout)
        self.assertTrue(TIME_RE.fullmatch(line.pop('first_timestamp')))
        self.assertTrue(TIME_RE.fullmatch(line.pop('last_timestamp')))
        self.assertEqual(line, {'stream_id': 'order-7', 'state': 'active', 'version': 2,
                                'event_count': 2, 'first_version': 1,
                                'max_age_seconds': 0, 'max_count': 0})

    def test_streams_all_includes_deleted(self):
        self.assertRun(['delete', self.db, 'user-3'], "Stream 'user-3' deleted\n")
        self.assertRun(['delete', '--hard', self.db, 'order-7'], "Stream 'order-7' tombstoned\n")
        self.assertRun(['streams', '--names-only', self.db], 'cart-1\n')
        self.assertRun(['streams', '--all', self.db],
                       'STREAM   STATE       VERSION  EVENTS  FIRST  LAST WRITE\n'
                       'cart-1   active      3        3       1      <TIME>\n'
                       'order-7  tombstoned  2        0       -      -\n'
                       'user-3   deleted     1        0       -      -\n')

    def test_read_stream_human(self):
        self.assertRun(['read', self.db, 'cart-1'],
                       'cart-1 #1  seq 1  <TIME>  ItemAdded\n'
                       '  data:\n'
                       '    {\n'
                       '      "sku" : "apple",\n'
                       '      "qty" : 2\n'
                       '    }\n'
                       '  metadata: {"tenant":"acme","score":7}\n'
                       'cart-1 #2  seq 3  <TIME>  ItemAdded\n'
                       '  data:\n'
                       '    {\n'
                       '      "sku" : "pear",\n'
                       '      "qty" : 1\n'
                       '    }\n'
                       '  metadata: {"tenant":"acme","score":11}\n'
                       'cart-1 #3  seq 4  <TIME>  CheckedOut\n'
                       '  data (5 bytes, base64): AAH+/4A=\n'
                       '  idempotency key: checkout-1\n')
        self.assertRun(['read', self.db, 'user-3'],
                       'user-3 #1  seq 5  <TIME>  Renamed\n'
                       '  data (text): plain text, not JSON\n')

    def test_read_json(self):
        events = self.read_json('cart-1')
        for e in events:
            self.assertTrue(TIME_RE.fullmatch(e.pop('timestamp')))
        self.assertEqual(events, [
            {'stream_id': 'cart-1', 'version': 1, 'sequence_id': 1, 'event_type': 'ItemAdded',
             'data': {'sku': 'apple', 'qty': 2}, 'metadata': {'tenant': 'acme', 'score': 7},
             'idempotency_key': None},
            {'stream_id': 'cart-1', 'version': 2, 'sequence_id': 3, 'event_type': 'ItemAdded',
             'data': {'sku': 'pear', 'qty': 1}, 'metadata': {'tenant': 'acme', 'score': 11},
             'idempotency_key': None},
            {'stream_id': 'cart-1', 'version': 3, 'sequence_id': 4, 'event_type': 'CheckedOut',
             'data_base64': 'AAH+/4A=', 'metadata': None, 'idempotency_key': 'checkout-1'},
        ])

    def test_read_all_after_limit_newest_first(self):
        seq = lambda events: [e['sequence_id'] for e in events]
        self.assertEqual(seq(self.read_json('@all')), [1, 2, 3, 4, 5, 6])
        self.assertEqual(seq(self.read_json('@all', '--after', '2')), [3, 4, 5, 6])
        self.assertEqual(seq(self.read_json('@all', '--after', '2', '--limit', '2')), [3, 4])
        self.assertEqual(seq(self.read_json('@all', '--newest-first')), [6, 5, 4, 3, 2, 1])
        self.assertEqual(seq(self.read_json('@all', '--before', '4')), [3, 2, 1])
        self.assertEqual(seq(self.read_json('@all', '-r', '-n', '2')), [6, 5])
        versions = [e['version'] for e in self.read_json('cart-1', '--before', '3')]
        self.assertEqual(versions, [2, 1])
        self.assertEqual(self.read_json('@all', '--limit', '0'), [])

    def test_filters(self):
        seq = lambda *f: [e['sequence_id'] for e in self.read_json('@all', *[a for x in f for a in ('--filter', x)])]
        self.assertEqual(seq('event_type=ItemAdded'), [1, 3])
        self.assertEqual(seq('event_type~order%'), [2, 6])
        self.assertEqual(seq('metadata.tenant=acme'), [1, 3])
        self.assertEqual(seq('metadata.score>5'), [1, 3])
        self.assertEqual(seq('metadata.score<=7', 'metadata.tenant=globex'), [6])
        self.assertEqual(seq('stream_id=order-7', 'version>1'), [6])
        self.assertEqual(seq('sequence_id>=5'), [5, 6])
        self.assertEqual(seq('timestamp>=2000-01-01T00:00:00Z'), [1, 2, 3, 4, 5, 6])
        self.assertEqual(seq('timestamp<2000-01-01T00:00:00Z'), [])
        self.assertEqual(seq('timestamp>0'), [1, 2, 3, 4, 5, 6])
        self.assertEqual(seq('metadata.score="7"'), [])
        self.assertEqual(seq('metadata.score=7'), [1])
        self.assertEqual(seq('metadata.tenant~AC%'), [1, 3])
        self.assertEqual(seq('stream_id~cart%', 'metadata.score>=7.5'), [3])
        self.assertEqual(seq('metadata.missing=1'), [])

    def test_bad_filters(self):
        cases = [
            ('foo', "Bad filter 'foo': expected FIELD=VALUE, FIELD~PATTERN or a comparison (<, <=, >, >=)"),
            ('colour=red', "Bad filter 'colour=red': unknown field 'colour' (use stream_id, event_type, version, sequence_id, timestamp or metadata.KEY)"),
            ('version>ten', "Bad filter 'version>ten': The value of version must be an integer, not 'ten'"),
            ('version~1%', "Bad filter 'version~1%': ~ (LIKE) applies to stream_id, event_type and metadata, not to version"),
            ('event_type>A', "Bad filter 'event_type>A': event_type takes = or ~, not a comparison"),
            ('timestamp>=yesterday', "Bad filter 'timestamp>=yesterday': The value of timestamp must be an ISO 8601 date and time with a time zone (such as 2026-01-01T00:00:00Z) or microseconds since the epoch, not 'yesterday'"),
        ]
        for expr, message in cases:
            self.assertRun(['read', self.db, '@all', '--filter', expr], '', 2,
                           'es-tool: read: %s\n' % message)

    def test_bad_input(self):
        missing = os.path.join(self.dir, 'missing.db')
        self.assertRun(['read', missing, '@all'], '', 4,
                       "es-tool: read: '%s' does not exist\n" % missing)
        self.assertFalse(os.path.exists(missing))
        self.assertRun(['delete', missing, 'x'], '', 4,
                       "es-tool: delete: '%s' does not exist\n" % missing)
        self.assertFalse(os.path.exists(missing))

        text = os.path.join(self.dir, 'notes.txt')
        with open(text, 'w') as f:
            f.write('hello, not a database\n' * 100)
        result = self.assertRun(['info', text], '', 1, None)
        self.assertTrue(result.stderr.startswith('es-tool: info: '), result.stderr)
        self.assertIn(text, result.stderr)

        self.assertRun(['streams', self.dir], '', 1,
                       "es-tool: streams: '%s' is a directory, not a database\n" % self.dir)
        self.assertRun(['read', self.db, 'nope'], '', 4, "es-tool: read: No stream 'nope'\n")

    @unittest.skipIf(os.geteuid() == 0, 'root reads files whatever their mode')
    def test_unreadable_file(self):
        os.chmod(self.db, 0)
        self.assertRun(['info', self.db], '', 1,
                       "es-tool: info: '%s' cannot be read: Permission denied\n" % self.db)

    def test_usage_errors(self):
        result = self.assertRun(['frobnicate'], '', 2,
                                "es-tool: Unknown command 'frobnicate' (see “es-tool --help”)\n")
        self.assertRun(['read', self.db, '@all', '--bogus'], '', 2,
                       'es-tool: read: Unknown option --bogus\n')
        self.assertRun(['read', self.db], '', 2,
                       'es-tool: read: Missing arguments (see “es-tool read --help”)\n')
        self.assertRun(['streams'], '', 2,
                       'es-tool: streams: No database given (see “es-tool streams --help”)\n')
        self.assertRun(['streams', self.db, 'extra'], '', 2,
                       "es-tool: streams: Unexpected argument 'extra' (see “es-tool streams --help”)\n")
        self.assertRun(['read', self.db, '@all', '--limit', '-3'], '', 2,
                       "es-tool: read: Invalid --limit '-3': expected an integer of at least 0\n")
        self.assertRun(['read', self.db, '@all', '--after', '1', '-r'], '', 2,
                       'es-tool: read: --after reads oldest first: it cannot be combined with --before or --newest-first\n')
        result = run()
        self.assertEqual(result.returncode, 2)
        self.assertIn('Usage:', result.stderr)

    def test_help(self):
        result = self.assertRun(['--help'])
        for command in ('info', 'streams', 'read', 'tail', 'delete', 'truncate', 'erase',
                        'retention', 'sweep', 'compact', 'subscriptions', 'index'):
            self.assertIn('\n  %s ' % command, result.stdout)
            sub = self.assertRun([command, '--help'])
            self.assertIn('es-tool %s [OPTION…] DATABASE' % command, sub.stdout)
            self.assertEqual(self.assertRun(['help', command]).stdout, sub.stdout)
        self.assertIn('--filter=EXPR', self.assertRun(['read', '--help']).stdout)

    @unittest.skipIf(HAS_POSTGRES, 'this build has PostgreSQL')
    def test_postgres_not_built(self):
        self.assertRun(['info', 'postgresql://localhost/events'], '', 1,
                       "es-tool: info: 'postgresql://localhost/events' is a PostgreSQL connection string, "
                       "but PostgreSQL is not available in this build of es-tool\n")

    @unittest.skipUnless(HAS_POSTGRES, 'this build has no PostgreSQL')
    def test_postgres_connection_string_goes_to_postgres(self):
        # Port 1 of localhost has no server: the error must come from libpq,
        # not from SQLite, and no file may be created.
        result = run('info', 'host=127.0.0.1 port=1 dbname=nothing connect_timeout=2')
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertTrue(result.stderr.startswith('es-tool: info: '), result.stderr)
        self.assertFalse(os.path.exists('host=127.0.0.1 port=1 dbname=nothing connect_timeout=2'))


class ColourTests(ToolTestCase):
    def test_no_colour_when_piped(self):
        result = self.assertRun(['read', self.db, 'user-3'])
        self.assertNotIn('\033[', result.stdout)

    @unittest.skipUnless(shutil.which('script'), 'needs script(1) for a terminal')
    def test_colour_on_terminal_unless_no_color(self):
        def on_tty(extra_env):
            env = dict(os.environ)
            env.pop('NO_COLOR', None)
            env.update(extra_env)
            env['TERM'] = 'xterm'
            command = '%s read %s user-3' % (TOOL, self.db)
            result = subprocess.run(['script', '-qec', command, '/dev/null'],
                                    capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
            return result.stdout

        coloured = on_tty({})
        self.assertIn('\033[1;36muser-3 #1\033[0m', coloured)
        self.assertIn('\033[1;32mRenamed\033[0m', coloured)
        self.assertNotIn('\033[', on_tty({'NO_COLOR': '1'}))

    @unittest.skipUnless(shutil.which('script'), 'needs script(1) for a terminal')
    def test_progress_bar_on_terminal_only(self):
        target = os.path.join(self.dir, 'out.jsonl')
        command = '%s export -o %s %s' % (TOOL, target, self.db)
        result = subprocess.run(['script', '-qec', command, '/dev/null'],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('Exporting [', result.stdout)
        self.assertIn('] 100%', result.stdout)
        # Not on a pipe.
        self.assertRun(['export', '-o', target, self.db], '6 events exported to %s\n' % target, 0, '')


class TailTests(ToolTestCase):
    def test_tail_last_events(self):
        self.assertRun(['tail', '-n', '2', self.db, 'cart-1'],
                       'cart-1 #2  seq 3  <TIME>  ItemAdded\n'
                       '  data:\n'
                       '    {\n'
                       '      "sku" : "pear",\n'
                       '      "qty" : 1\n'
                       '    }\n'
                       '  metadata: {"tenant":"acme","score":11}\n'
                       'cart-1 #3  seq 4  <TIME>  CheckedOut\n'
                       '  data (5 bytes, base64): AAH+/4A=\n'
                       '  idempotency key: checkout-1\n')
        result = self.assertRun(['tail', '--json', self.db, '@all', '--filter', 'event_type=ItemAdded'])
        self.assertEqual([json.loads(l)['sequence_id'] for l in result.stdout.splitlines()], [1, 3])

    def test_tail_follow_prints_events_of_another_process(self):
        proc = subprocess.Popen([TOOL, 'tail', '-f', '--json', '-n', '1', self.db, '@all'],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = LineReader(proc.stdout)
        try:
            first = json.loads(lines.readline())
            self.assertEqual(first['sequence_id'], 6)
            # The tool has printed its history: it watches from there on.
            fixture('append', self.db, 'cart-9', 'Live', '{"live":true}')
            live = json.loads(lines.readline())
            self.assertEqual((live['stream_id'], live['version'], live['sequence_id'],
                              live['event_type'], live['data']),
                             ('cart-9', 1, 7, 'Live', {'live': True}))
            fixture('append', self.db, 'cart-9', 'Again', '2')
            self.assertEqual(json.loads(lines.readline())['data'], 2)
        finally:
            proc.terminate()
            err = proc.stderr.read()
            proc.wait(timeout=60)
            proc.stderr.close()
            lines.close()
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(err, '')


class LifecycleTests(ToolTestCase):
    def test_delete_expected_version(self):
        self.assertRun(['delete', '--expected-version', '2', self.db, 'cart-1'], '', 5, None)
        self.assertEqual(len(self.read_json('cart-1')), 3)
        self.assertRun(['delete', '-e', '3', self.db, 'cart-1'], "Stream 'cart-1' deleted\n")
        self.assertRun(['read', self.db, 'cart-1'], '')
        self.assertRun(['delete', self.db, 'cart-l'], '', 4, "es-tool: delete: No stream 'cart-l'\n")
        self.assertRun(['delete', '--hard', self.db, 'cart-1'], "Stream 'cart-1' tombstoned\n")
        self.assertRun(['streams', '--all', '--names-only', self.db], 'cart-1\norder-7\nuser-3\n')

    def test_truncate(self):
        self.assertRun(['truncate', self.db, 'cart-1'], '', 2, 'es-tool: truncate: --before is required\n')
        self.assertRun(['truncate', '--before', '3', self.db, 'cart-1'],
                       "Stream 'cart-1' truncated before version 3\n")
        self.assertEqual([e['version'] for e in self.read_json('cart-1')], [3])
        self.assertRun(['truncate', '--before', '2', self.db, 'nope'], '', 4,
                       "es-tool: truncate: No stream 'nope'\n")

    def test_erase(self):
        self.assertRun(['erase', self.db, 'cart-1', 'x'], '', 2,
                       "es-tool: erase: Invalid VERSION 'x': expected an integer of at least 1\n")
        self.assertRun(['erase', self.db, 'cart-1', '1'], "Version 1 of stream 'cart-1' erased\n")
        first = self.read_json('cart-1')[0]
        self.assertEqual((first['version'], first['metadata'], first.get('erased')), (1, None, True))
        self.assertNotIn('apple', json.dumps(first))
        result = self.assertRun(['erase', self.db, 'cart-1', '9'], '', 4, None)
        self.assertTrue(result.stderr.startswith('es-tool: erase: '), result.stderr)

    def test_retention_and_sweep(self):
        self.assertRun(['retention', self.db, 'cart-1'], 'Max age: -\nMax count: -\n')
        self.assertRun(['retention', '--max-count', '1', self.db, 'cart-1'],
                       "Retention policy of stream 'cart-1' set\n")
        self.assertEqual([e['version'] for e in self.read_json('cart-1')], [3])
        self.assertRun(['retention', '--max-age', '1d12h', self.db, 'order-7'],
                       "Retention policy of stream 'order-7' set\n")
        self.assertRun(['retention', self.db, 'order-7'], 'Max age: 1d12h\nMax count: -\n')
        self.assertRun(['retention', '--max-age', 'soon', self.db], '', 2,
                       "es-tool: retention: Invalid --max-age 'soon': expected a duration such as 90d, 12h, 30m or 45s\n")
        self.assertRun(['sweep', self.db], '0 events removed\n')
        self.assertRun(['retention', '--max-count', '1', self.db], 'Database-wide retention policy set\n')
        self.assertEqual([e['sequence_id'] for e in self.read_json('@all')], [4, 5, 6])
        self.assertRun(['compact', self.db], 'Database compacted\n')

    def test_subscriptions(self):
        fixture('subscribe', self.db, 'projector', '@all', '4')
        self.assertRun(['subscriptions', self.db],
                       'NAME       STREAM  CHECKPOINT  LAG  UPDATED\n'
                       'projector  @all    4           2    <TIME>\n')
        self.assertRun(['subscriptions', self.db, 'reset', 'projector', '1'],
                       "Subscription 'projector' reset to position 1\n")
        result = self.assertRun(['subscriptions', '--json', self.db, 'list'])
        line = json.loads(result.stdout)
        self.assertEqual((line['name'], line['checkpoint'], line['lag']), ('projector', 1, 5))
        self.assertRun(['subscriptions', self.db, 'delete', 'nope'], '', 4, None)
        self.assertRun(['subscriptions', self.db, 'delete', 'projector'],
                       "Subscription 'projector' deleted\n")
        self.assertRun(['subscriptions', self.db], 'NAME  STREAM  CHECKPOINT  LAG  UPDATED\n')
        self.assertRun(['subscriptions', self.db, 'rename'], '', 2,
                       "es-tool: subscriptions: Unknown action 'rename': use list, reset or delete\n")

    def test_index(self):
        seq = lambda *f: [e['sequence_id'] for e in self.read_json('@all', *[a for x in f for a in ('--filter', x)])]
        self.assertRun(['index', self.db], '')
        self.assertRun(['index', self.db, 'add', 'tenant'], "Metadata path 'tenant' declared\n")
        self.assertRun(['index', self.db, 'add', 'tenant'], "Metadata path 'tenant' declared\n")
        self.assertRun(['index', self.db, 'add', 'user.id'], "Metadata path 'user.id' declared\n")
        self.assertRun(['index', self.db, 'list'], 'tenant\nuser.id\n')
        result = self.assertRun(['index', '--json', self.db])
        self.assertEqual([json.loads(line)['path'] for line in result.stdout.splitlines()],
                         ['tenant', 'user.id'])
        # The filters answer as before.
        self.assertEqual(seq('metadata.tenant=acme'), [1, 3])
        self.assertEqual(seq('metadata.score<=7', 'metadata.tenant=globex'), [6])
        self.assertRun(['index', self.db, 'add', 'a..b'], '', 2, None)
        self.assertRun(['index', self.db, 'remove', 'nope'], '', 4,
                       "es-tool: index: Metadata path 'nope' is not declared\n")
        self.assertRun(['index', self.db, 'remove', 'tenant'], "Metadata path 'tenant' removed\n")
        self.assertRun(['index', self.db], 'user.id\n')
        self.assertEqual(seq('metadata.tenant=acme'), [1, 3])
        self.assertRun(['index', self.db, 'add'], '', 2,
                       'es-tool: index: The add action takes a PATH (see “es-tool index --help”)\n')
        self.assertRun(['index', self.db, 'rebuild'], '', 2,
                       "es-tool: index: Unknown action 'rebuild': use list, add or remove\n")


class TransferTests(ToolTestCase):
    def test_read_json_is_the_export_format(self):
        exported = self.assertRun(['export', self.db]).stdout
        self.assertEqual(run('read', '--json', self.db, '@all').stdout, exported)
        self.assertEqual(len(exported.splitlines()), 6)

    def test_export_import_round_trip_is_byte_identical(self):
        fixture('subscribe', self.db, 'projector', '@all', '2')
        self.assertRun(['erase', self.db, 'order-7', '1'])
        first = os.path.join(self.dir, 'first.jsonl')
        second = os.path.join(self.dir, 'second.jsonl')
        copy = os.path.join(self.dir, 'copy.db')
        self.assertRun(['export', '-o', first, self.db], '6 events exported to %s\n' % first)
        self.assertRun(['import', '-i', first, copy], '6 events imported\n')
        self.assertRun(['export', '--output', second, copy], '6 events exported to %s\n' % second)
        with open(first, 'rb') as a, open(second, 'rb') as b:
            first_bytes, second_bytes = a.read(), b.read()
        self.assertEqual(first_bytes, second_bytes)
        self.assertIn(b'"data_base64":"AAH+/4A="', first_bytes)
        self.assertIn(b'"erased":true', first_bytes)
        # Through pipes too, and importing again skips what is stored.
        exported = subprocess.run([TOOL, 'export', self.db], capture_output=True, check=True).stdout
        result = subprocess.run([TOOL, 'import', copy], input=exported, capture_output=True)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, b'0 events imported\n', b''))
        self.assertRun(['streams', '--names-only', copy], 'cart-1\norder-7\nuser-3\n')

    def test_export_one_stream_filtered(self):
        out = self.assertRun(['export', '--stream', 'cart-1', '-f', 'event_type=ItemAdded', self.db]).stdout
        self.assertEqual([json.loads(l)['version'] for l in out.splitlines()], [1, 2])
        out = self.assertRun(['export', '--data-base64', '-s', 'user-3', self.db]).stdout
        self.assertEqual(json.loads(out)['data_base64'], 'cGxhaW4gdGV4dCwgbm90IEpTT04=')

    def test_export_failure_keeps_existing_output(self):
        target = os.path.join(self.dir, 'keep.jsonl')
        with open(target, 'w') as f:
            f.write('old\n')
        self.assertRun(['export', '-o', target, '-f', 'version~1', self.db], '', 2, None)
        with open(target) as f:
            self.assertEqual(f.read(), 'old\n')

    def test_import_bad_input(self):
        good = run('export', self.db).stdout.splitlines()
        bad = os.path.join(self.dir, 'bad.jsonl')
        with open(bad, 'w') as f:
            f.write(good[0] + '\n' + '{"stream_id": "x", oops\n' + good[2] + '\n')
        target = os.path.join(self.dir, 'target.db')
        result = self.assertRun(['import', '-i', bad, target], '', 1, None)
        self.assertTrue(result.stderr.startswith('es-tool: import: '), result.stderr)
        self.assertIn('2', result.stderr.split('\n')[0])
        # Nothing of the batch was committed.
        self.assertRun(['streams', '--names-only', target], '')

        missing = os.path.join(self.dir, 'missing.jsonl')
        result = self.assertRun(['import', '-i', missing, target], '', 4, None)
        self.assertIn(missing, result.stderr)

    def test_import_conflict(self):
        other = os.path.join(self.dir, 'other.db')
        fixture('append', other, 'cart-1', 'Different', '{}')
        exported = run('export', self.db).stdout
        result = run('import', other, input=exported)
        self.assertEqual(result.returncode, 5, result.stderr)
        self.assertTrue(result.stderr.startswith('es-tool: import: '), result.stderr)
        self.assertEqual([e['event_type'] for e in self.read_json_of(other, 'cart-1')], ['Different'])

    def read_json_of(self, db, stream):
        return [json.loads(l) for l in run('read', '--json', db, stream).stdout.splitlines()]

    def test_backup(self):
        target = os.path.join(self.dir, 'backup.db')
        self.assertRun(['backup', self.db, target], 'Backed up to %s\n' % target)
        self.assertEqual(run('export', target).stdout, run('export', self.db).stdout)
        self.assertRun(['check', target], 'No problems found\n')
        result = self.assertRun(['backup', self.db, target], '', 5, None)
        self.assertTrue(result.stderr.startswith('es-tool: backup: '), result.stderr)
        self.assertIn(target, result.stderr)
        self.assertRun(['backup', '--overwrite', self.db, target], 'Backed up to %s\n' % target)
        nowhere = os.path.join(self.dir, 'no-such-dir', 'backup.db')
        result = run('backup', self.db, nowhere)
        self.assertIn(result.returncode, (1, 4))
        self.assertTrue(result.stderr.startswith('es-tool: backup: '), result.stderr)
        self.assertFalse(os.path.exists(nowhere))

    def test_backup_while_a_writer_appends(self):
        writer = subprocess.Popen([FIXTURE, 'writer', self.db, 'ticks', '3000'],
                                  stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(writer.stdout.readline(), 'started\n')
            target = os.path.join(self.dir, 'live.db')
            self.assertRun(['backup', self.db, target], 'Backed up to %s\n' % target)
        finally:
            self.assertEqual(writer.stdout.read(), 'done\n')
            writer.wait(timeout=120)
            writer.stdout.close()
        self.assertRun(['check', target], 'No problems found\n')
        ticks = self.read_json_of(target, 'ticks')
        # A prefix of the writer's events: versions 1..k, each its own data.
        self.assertGreaterEqual(len(ticks), 1)
        self.assertEqual([e['version'] for e in ticks], list(range(1, len(ticks) + 1)))
        self.assertEqual([e['data']['n'] for e in ticks], list(range(1, len(ticks) + 1)))
        self.assertEqual(len(self.read_json_of(self.db, 'ticks')), 3000)

    def test_interrupted_backup_leaves_nothing(self):
        import signal
        big = os.path.join(self.dir, 'big.db')
        fixture('bulk', big, '100000', '400')
        target = os.path.join(self.dir, 'interrupted.db')
        proc = subprocess.Popen([TOOL, 'backup', big, target],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Interrupt once the copy is under way (its temporary file exists).
        part = None
        while part is None and proc.poll() is None:
            part = next((n for n in os.listdir(self.dir) if n.endswith('.part')), None)
        if part is not None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            self.assertRun(['check', '--quick', target], 'No problems found\n')
            self.skipTest('the backup was complete before it could be interrupted')
        self.assertEqual(proc.returncode, 130, err)
        self.assertEqual(out, '')
        self.assertTrue(err.startswith('es-tool: backup: '), err)
        self.assertFalse(os.path.exists(target))
        self.assertEqual([n for n in os.listdir(self.dir) if n.endswith('.part')], [])

    def plant(self, *statements):
        import sqlite3
        db = sqlite3.connect(self.db)
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()

    def test_check_clean(self):
        self.assertRun(['check', self.db], 'No problems found\n')
        self.assertRun(['check', '--quick', self.db], 'No problems found\n')
        self.assertRun(['check', '--json', self.db], '')

    def test_check_finds_a_gap(self):
        self.plant("DELETE FROM events WHERE stream_id = 'cart-1' AND version = 2")
        result = self.assertRun(['check', self.db], None, 3)
        self.assertIn('version-gap: ', result.stdout)
        self.assertTrue(result.stdout.endswith('problems found\n') or result.stdout.endswith('1 problem found\n'))
        problems = [json.loads(l) for l in self.assertRun(['check', '--json', self.db], None, 3).stdout.splitlines()]
        gaps = [p for p in problems if p['kind'] == 'version-gap']
        self.assertEqual([p['stream_id'] for p in gaps], ['cart-1'])

    def test_check_finds_a_duplicate_key(self):
        self.plant('DROP INDEX events_idempotency_key',
                   "UPDATE events SET idempotency_key = 'twice' WHERE stream_id = 'cart-1' AND version IN (1, 2)")
        problems = [json.loads(l) for l in self.assertRun(['check', '--json', self.db], None, 3).stdout.splitlines()]
        self.assertIn(('duplicate-key', 'cart-1'), [(p['kind'], p['stream_id']) for p in problems])

    def test_check_finds_a_corrupt_page(self):
        fixture('writer', self.db, 'ticks', '3000')
        page_size = 4096
        with open(self.db, 'r+b') as f:
            f.seek(0, 2)
            n_pages = f.tell() // page_size
            self.assertGreater(n_pages, 20)
            for page in range(n_pages // 3, 2 * n_pages // 3, 5):
                f.seek(page * page_size + 16)
                f.write(b'\xa5' * 64)
        result = run('check', self.db)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertTrue(result.stdout.startswith('storage: '), result.stdout[:200])
        self.assertTrue(result.stdout.endswith(' problems found\n'), result.stdout[-200:])
        result = run('check', '--quick', self.db)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn('storage: ', result.stdout)


@unittest.skipUnless(os.environ.get('ES_TEST_PG_CONNINFO'), 'no PostgreSQL server (run through build-aux/pg-test-server)')
class PostgresTests(ToolTestCase):
    """The same commands on PostgreSQL. The fixture fills the server as it
    fills the SQLite file (setUp), so both must print the same, times
    aside. The tests run in this order on one server."""

    def test_1_inspect(self):
        pg = os.environ['ES_TEST_PG_CONNINFO']
        # A password in the connection string is not shown, in either form
        # (the test server trusts local connections: any password works).
        result = self.assertRun(['info', pg + ' password=hunter2'])
        self.assertNotIn('hunter2', result.stdout)
        self.assertIn('password=***', result.stdout)
        self.assertIn('Streams:           0\n', result.stdout)
        params = dict(pair.split('=', 1) for pair in pg.split())
        uri = 'postgresql://%s:hunter2@/%s?%s' % (
            params.pop('user', 'es'), params.pop('dbname', 'postgres'),
            '&'.join('%s=%s' % kv for kv in params.items()))
        result = self.assertRun(['info', uri])
        self.assertNotIn('hunter2', result.stdout)
        self.assertIn(':***@', result.stdout)

        fixture('create', pg)
        fixture('subscribe', pg, 'projector', '@all', '4')
        for args in (['streams'], ['read', '@all'], ['read', '--json', '-r', '@all'],
                     ['read', '-f', 'metadata.tenant=acme', '-f', 'version>1', '@all'],
                     ['read', '-f', 'event_type~order%', '@all'], ['tail', '-n', '2', 'cart-1'],
                     ['export'], ['export', '--stream', 'order-7'], ['subscriptions']):
            pg_args = [args[0], pg] + args[1:]
            sqlite_args = [args[0], self.db] + args[1:]
            if args[0] == 'subscriptions':
                fixture('subscribe', self.db, 'projector', '@all', '4')
            pg_result = run(*pg_args)
            self.assertEqual(pg_result.returncode, 0, pg_result.stderr)
            self.assertEqual(norm(pg_result.stdout), norm(run(*sqlite_args).stdout), args)
        info = json.loads(self.assertRun(['info', '--json', pg]).stdout)
        self.assertEqual((info['backend'], info['streams'], info['events'], info['subscriptions']),
                         ('postgresql', 3, 6, 1))
        self.assertRun(['check', pg], 'No problems found\n')
        self.assertRun(['read', pg, 'nope'], '', 4, "es-tool: read: No stream 'nope'\n")
        result = self.assertRun(['backup', pg, os.path.join(self.dir, 'pg.db')], '', 1, None)
        self.assertTrue(result.stderr.startswith('es-tool: backup: '), result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'pg.db')))

        # tail -f sees an event another process writes.
        proc = subprocess.Popen([TOOL, 'tail', '-f', '--json', '-n', '1', pg, 'cart-1'],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = LineReader(proc.stdout)
        try:
            self.assertEqual(json.loads(lines.readline())['version'], 3)
            fixture('append', pg, 'cart-1', 'FromAnotherProcess', '{"live":1}')
            live = json.loads(lines.readline())
            self.assertEqual((live['version'], live['event_type'], live['data']),
                             (4, 'FromAnotherProcess', {'live': 1}))
        finally:
            proc.terminate()
            err = proc.stderr.read()
            proc.wait(timeout=60)
            proc.stderr.close()
            lines.close()
        self.assertEqual((proc.returncode, err), (0, ''))

        self.assertRun(['delete', '--hard', pg, 'user-3'], "Stream 'user-3' tombstoned\n")
        self.assertRun(['streams', '--names-only', pg], 'cart-1\norder-7\n')
        self.assertRun(['subscriptions', pg, 'reset', 'projector', '1'],
                       "Subscription 'projector' reset to position 1\n")
        self.assertRun(['truncate', '--before', '2', pg, 'order-7'],
                       "Stream 'order-7' truncated before version 2\n")
        self.assertEqual([json.loads(l)['version'] for l in run('read', '--json', pg, 'order-7').stdout.splitlines()], [2])

    def test_2_import(self):
        pg = os.environ['ES_TEST_PG_CONNINFO']
        # The SQLite fixture's events under new stream ids: PostgreSQL
        # stores them with their versions, keys, times, metadata and data.
        lines = []
        for line in run('export', self.db).stdout.splitlines():
            event = json.loads(line)
            event['stream_id'] = 'copy-' + event['stream_id']
            lines.append(event)
        text = ''.join(json.dumps(e, separators=(',', ':')) + '\n' for e in lines)
        result = run('import', pg, input=text)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, '6 events imported\n', ''))
        back = [json.loads(l) for l in run('export', '-f', 'stream_id~copy-%', pg).stdout.splitlines()]
        for event in lines + back:
            event.pop('sequence_id')
        self.assertEqual(back, lines)
        result = run('import', pg, input=text)
        self.assertEqual((result.returncode, result.stdout), (0, '0 events imported\n'), result.stderr)


class CompletionTests(ToolTestCase):
    def complete(self, *words):
        script = os.path.join(SRCDIR, 'tools', 'es-tool.bash-completion')
        env = dict(os.environ)
        env['PATH'] = os.path.dirname(TOOL) + os.pathsep + env.get('PATH', '')
        words_text = ' '.join("'%s'" % w for w in words)
        program = ('source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _es_tool; '
                   'printf "%%s\\n" "${COMPREPLY[@]}"' % (script, words_text, len(words) - 1))
        result = subprocess.run(['bash', '--norc', '--noprofile', '-c', program],
                                capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        return sorted(filter(None, result.stdout.split('\n')))

    @unittest.skipUnless(shutil.which('bash'), 'needs bash')
    def test_completion(self):
        self.assertEqual(self.complete('es-tool', 'st'), ['streams'])
        self.assertEqual(self.complete('es-tool', 'su'), ['subscriptions'])
        self.assertEqual(self.complete('es-tool', 'read', '--n'), ['--newest-first'])
        self.assertEqual(self.complete('es-tool', 'read', self.db, ''),
                         ['@all', 'cart-1', 'order-7', 'user-3'])
        self.assertEqual(self.complete('es-tool', 'read', '--limit', '3', self.db, 'or'), ['order-7'])
        self.assertEqual(self.complete('es-tool', 'delete', '--hard', self.db, 'c'), ['cart-1'])
        self.assertEqual(self.complete('es-tool', 'read', '-f', 'version>1', self.db, 'u'), ['user-3'])
        self.assertEqual(self.complete('es-tool', 'tail', '-f', self.db, 'u'), ['user-3'])
        self.assertEqual(self.complete('es-tool', 'export', self.db, '--stream', 'ca'), ['cart-1'])
        self.assertEqual(self.complete('es-tool', 'backup', '--o'), ['--overwrite'])
        self.assertEqual(self.complete('es-tool', 'subscriptions', self.db, 're'), ['reset'])
        self.assertEqual(self.complete('es-tool', 'info', os.path.join(self.dir, 'ev')), [self.db])


class ManualTests(unittest.TestCase):
    @unittest.skipUnless(shutil.which('groff'), 'needs groff')
    def test_manual_renders_without_warnings(self):
        page = os.path.join(SRCDIR, 'doc', 'es-tool.1')
        result = subprocess.run(['groff', '-man', '-Tutf8', '-ww', '-z', page],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual((result.returncode, result.stderr), (0, ''))
        env = dict(os.environ, MANWIDTH='80')
        result = subprocess.run(['groff', '-man', '-Tutf8', page],
                                capture_output=True, text=True, timeout=60, env=env)
        self.assertIn('es-tool', result.stdout)

    def test_manual_names_every_command(self):
        with open(os.path.join(SRCDIR, 'doc', 'es-tool.1')) as f:
            page = f.read()
        commands = run('--help').stdout.split('Commands:')[1].split('\n\n')[0]
        for line in commands.strip().splitlines():
            name = line.split()[0]
            self.assertTrue(re.search(r'^\.B (es-tool )?%s\b' % name, page, re.M), name)


if __name__ == '__main__':
    unittest.main(verbosity=2)
