// subscription-cases.js: durable subscriptions (issue 17) from GJS, for
// every backend, with async/await.
//
// subscriptionTests(env) returns the tests as an object of async functions;
// tests/test-es.js runs them on SQLite and tests/postgres/test-pg.js on
// PostgreSQL, with the same env as tests/lifecycle-cases.js (newFactory,
// secondFactory, cleanup). Each test checks what is stored
// (get_subscription_info, list_subscriptions) after each operation. The
// callables used here count for tests/bindings/check-coverage.py (this file
// is among its --gjs files).
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import Es from 'gi://Es?version=1.0';
import {promisifyAll, positionOf} from '../introspection/gjs/es-async.js';

// The helper makes every pair awaitable and Es.Subscription
// async-iterable; the pairs are also named one by one, as an application
// without the helper would.
promisifyAll(Es);
Gio._promisify(Es.Subscription.prototype, 'start_async', 'start_finish');
Gio._promisify(Es.Subscription.prototype, 'stop_async', 'stop_finish');
Gio._promisify(Es.Subscription.prototype, 'save_state_async', 'save_state_finish');
Gio._promisify(Es.Subscription.prototype, 'flush_async', 'flush_finish');
Gio._promisify(Es.StreamFactory.prototype, 'list_subscriptions_async',
    'list_subscriptions_finish');
Gio._promisify(Es.StreamFactory.prototype, 'get_subscription_info_async',
    'get_subscription_info_finish');
Gio._promisify(Es.StreamFactory.prototype, 'reset_subscription_async',
    'reset_subscription_finish');
Gio._promisify(Es.StreamFactory.prototype, 'delete_subscription_async',
    'delete_subscription_finish');

const TIMEOUT_MS = 30000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

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

const bytes = text => new GLib.Bytes(encoder.encode(text));
const text = gbytes => decoder.decode(gbytes.toArray());

export function subscriptionTests(env) {
    async function withFactory(body) {
        const factory = env.newFactory();
        try {
            await body(factory);
        } finally {
            env.cleanup(factory);
        }
    }

    const append = (factory, streamId, types) =>
        factory.open_stream(streamId, null).write(
            types.map(t => Es.CandidateEvent.new(t, bytes(''))), Es.VERSION_ANY, null);
    const collect = sub => {
        const seen = [], errors = [];
        const state = {caughtUp: false};
        sub.connect('event', (s, event) => seen.push(positionOf(s, event)));
        sub.connect('caught-up', () => {
            state.caughtUp = true;
        });
        sub.connect('error', (_s, error) => errors.push(error));
        return [seen, state, errors];
    };

    return {
        async 'subscriptions: properties, delivery, checkpoints, resume'() {
            await withFactory(async factory => {
                append(factory, 'a', ['A', 'A', 'B']);
                append(factory, 'b', ['B', 'A']);
                const sub = Es.Subscription.new(factory, 'all-1', null, null,
                    Es.SubscriptionFlags.NONE);
                assertEqual([sub.get_name(), sub.get_stream_id(), sub.stream_id],
                    ['all-1', '@all', '@all'], 'names');
                assertEqual(sub.get_flags(), Es.SubscriptionFlags.NONE, 'flags');
                assertEqual([sub.get_start_from(), sub.get_start_position(),
                    sub.get_checkpoint_batch(), sub.get_checkpoint_delay()],
                [Es.SubscriptionStart.BEGINNING, 0, 100, 1000], 'defaults');
                sub.set_checkpoint_batch(2);
                sub.set_checkpoint_delay(0);
                assertEqual([sub.get_checkpoint_batch(), sub.get_checkpoint_delay()], [2, 0],
                    'set');
                assert(!sub.get_active() && !sub.get_caught_up(), 'inactive before start');
                assertEqual(sub.get_state(), null, 'no state');
                const [seen, flags, errors] = collect(sub);
                assert(sub.start(null), 'start');
                assertEqual(factory.get_subscription_info('all-1', null).get_checkpoint(), 0,
                    'stored at start');
                await waitFor(() => flags.caughtUp && seen.length === 5, 'caught up');
                assertEqual(seen, [1, 2, 3, 4, 5], 'sequence ids in order');
                assertEqual([sub.get_position(), sub.get_lag()], [5, 0], 'position, lag');
                assert(sub.get_caught_up(), 'caught-up property');
                await waitFor(() => sub.get_checkpoint() === 4, 'batches of two');
                assert(sub.flush(null), 'flush');
                assertEqual(factory.get_subscription_info('all-1', null).get_checkpoint(), 5,
                    'flushed');
                assert(await sub.stop_async(null), 'stop_async');
                assert(!sub.get_active(), 'stopped');
                assertEqual(errors.length, 0, 'no error');

                append(factory, 'b', ['D', 'E']);
                const info = factory.get_subscription_info('all-1', null);
                assertEqual([info.get_name(), info.get_stream_id(), info.get_checkpoint(),
                    info.get_lag(), info.get_state()], ['all-1', '@all', 5, 2, null],
                'stored info');
                assert(info.get_updated_usec() > 0, 'updated');
                assertEqual(info.get_updated().to_unix(),
                    Math.floor(info.get_updated_usec() / 1000000), 'updated GDateTime');

                const again = Es.Subscription.new(factory, 'all-1', null, null, 0);
                const [seen2, flags2] = collect(again);
                assert(await again.start_async(null), 'start_async');
                await waitFor(() => flags2.caughtUp && seen2.length === 2, 'resumed');
                assertEqual(seen2, [6, 7], 'after the checkpoint');
                again.stop(null);
                assertEqual(factory.get_subscription_info('all-1', null).get_checkpoint(), 7,
                    'stop stores');
            });
        },

        async 'subscriptions: start from end or position, bad input'() {
            await withFactory(async factory => {
                append(factory, 's', ['A', 'B', 'C']);
                const at = Es.Subscription.new(factory, 'from-2', 's', null, 0);
                at.set_start_from(Es.SubscriptionStart.POSITION);
                at.set_start_position(2);
                assertEqual([at.get_start_from(), at.get_start_position()],
                    [Es.SubscriptionStart.POSITION, 2], 'start settings');
                const [seen, flags] = collect(at);
                at.start(null);
                assertEqual(factory.get_subscription_info('from-2', null).get_checkpoint(), 2,
                    'stored before start returned');
                await waitFor(() => flags.caughtUp, 'caught up');
                assertEqual(seen, [3], 'after position 2');
                at.stop(null);

                const beyond = Es.Subscription.new(factory, 'beyond', 's', null, 0);
                beyond.set_start_from(Es.SubscriptionStart.POSITION);
                beyond.set_start_position(9);
                assertThrowsEs(() => beyond.start(null), Es.Error.INVALID_ARGUMENT,
                    'beyond the head', ['9', '3']);
                assertThrowsEs(() => factory.get_subscription_info('beyond', null),
                    Es.Error.NOT_FOUND, 'nothing stored', ['beyond']);
                const empty = Es.Subscription.new(factory, '', null, null, 0);
                assertThrowsEs(() => empty.start(null), Es.Error.INVALID_ARGUMENT, 'empty name');

                // One consumer at a time.
                const first = Es.Subscription.new(factory, 'one', null, null, 0);
                first.start(null);
                const same = Es.Subscription.new(factory, 'one', null, null, 0);
                await assertRejectsEs(same.start_async(null), Es.Error.BUSY, 'same storage',
                    ['one']);
                const other = env.secondFactory(factory);
                try {
                    const taken = Es.Subscription.new(other, 'one', null, null,
                        Es.SubscriptionFlags.FAIL_IF_TAKEN);
                    assertThrowsEs(() => taken.start(null), Es.Error.BUSY, 'other process');
                    assertThrowsEs(() => other.delete_subscription('one', null), Es.Error.BUSY,
                        'delete while consumed');
                } finally {
                    other.close(null);
                }
                first.stop(null);
            });
        },

        async 'subscriptions: manual ack, keep state, management'() {
            await withFactory(async factory => {
                append(factory, 's', ['A', 'B', 'C', 'D']);
                const acked = Es.Subscription.new(factory, 'acked', 's', null,
                    Es.SubscriptionFlags.MANUAL_ACK);
                acked.set_checkpoint_delay(0);
                const [seen, flags] = collect(acked);
                acked.start(null);
                await waitFor(() => flags.caughtUp, 'caught up');
                assertEqual(seen, [1, 2, 3, 4], 'delivered');
                acked.acknowledge(2);
                assert(await acked.flush_async(null), 'flush_async');
                assertEqual(factory.get_subscription_info('acked', null).get_checkpoint(), 2,
                    'only what was acknowledged');
                acked.stop(null);

                const keeper = Es.Subscription.new(factory, 'keeper', 's', null,
                    Es.SubscriptionFlags.KEEP_STATE);
                const [, kflags] = collect(keeper);
                keeper.start(null);
                await waitFor(() => kflags.caughtUp, 'caught up');
                assert(keeper.save_state(bytes('two'), 2, null), 'save_state');
                assert(await keeper.save_state_async(bytes('three'), 3, null),
                    'save_state_async');
                assertEqual(text(keeper.get_state()), 'three', 'state property');
                await assertRejectsEs(keeper.save_state_async(bytes('x'), 9, null),
                    Es.Error.INVALID_ARGUMENT, 'beyond delivered', ['9']);
                keeper.stop(null);
                let info = await factory.get_subscription_info_async('keeper', null);
                assertEqual([info.get_checkpoint(), text(info.get_state())], [3, 'three'],
                    'state with its checkpoint');

                const infos = await factory.list_subscriptions_async(null);
                assertEqual(infos.map(i => [i.get_name(), i.get_checkpoint(), i.get_lag()]),
                    [['acked', 2, 2], ['keeper', 3, 1]], 'list_subscriptions_async');
                assertEqual(factory.list_subscriptions(null).map(i => i.get_name()),
                    ['acked', 'keeper'], 'list_subscriptions');
                assert(factory.reset_subscription('keeper', 1, null), 'reset');
                info = factory.get_subscription_info('keeper', null);
                assertEqual([info.get_checkpoint(), info.get_state()], [1, null],
                    'reset drops the state');
                assert(await factory.reset_subscription_async('acked', 4, null), 'reset_async');
                await assertRejectsEs(factory.reset_subscription_async('acked', 5, null),
                    Es.Error.INVALID_ARGUMENT, 'beyond the head', ['acked', '5']);
                assert(factory.delete_subscription('keeper', null), 'delete');
                assert(await factory.delete_subscription_async('acked', null), 'delete_async');
                assertEqual(factory.list_subscriptions(null).length, 0, 'all gone');
                await assertRejectsEs(factory.get_subscription_info_async('acked', null),
                    Es.Error.NOT_FOUND, 'deleted', ['acked']);
            });
        },

        async 'subscriptions: the storage handle and the info value'() {
            await withFactory(async factory => {
                append(factory, 's', ['A', 'B', 'C']);
                const storage = factory.get_storage();
                assertEqual(storage.get_subscription('direct', null), null, 'none yet');
                assert(storage.acquire_subscription('direct', false, null), 'acquire');
                assertThrowsEs(() => storage.acquire_subscription('direct', false, null),
                    Es.Error.BUSY, 'second acquire', ['direct']);
                assert(storage.save_checkpoint('direct', 's', 2, bytes('st'), null), 'save');
                assert(storage.save_checkpoint('direct', 's', 3, null, null), 'keeps state');
                const info = storage.get_subscription('direct', null);
                assertEqual([info.get_checkpoint(), info.get_lag(), text(info.get_state())],
                    [3, 0, 'st'], 'stored');
                assertThrowsEs(() => storage.save_checkpoint('direct', 's', 1, null, null),
                    Es.Error.INVALID_ARGUMENT, 'lower', ['1', '3']);
                assertEqual(storage.list_subscriptions(null).map(i => i.get_name()),
                    ['direct'], 'listed');
                assertThrowsEs(() => storage.reset_subscription('direct', 0, null),
                    Es.Error.BUSY, 'reset while held', ['direct']);
                storage.release_subscription('direct');
                assert(storage.reset_subscription('direct', 0, null), 'reset');
                assertEqual(storage.get_subscription('direct', null).get_checkpoint(), 0,
                    'reset stored');
                assert(storage.delete_subscription('direct', null), 'delete');
                assertEqual(storage.list_subscriptions(null).length, 0, 'deleted');

                const value = Es.SubscriptionInfo.new('n', '@all', 4, 2, bytes('s'),
                    1700000000123456);
                assertEqual([value.get_name(), value.get_stream_id(), value.get_checkpoint(),
                    value.get_lag(), text(value.get_state()), value.get_updated_usec()],
                ['n', '@all', 4, 2, 's', 1700000000123456], 'value type');
            });
        },

        async 'subscriptions: for await acknowledges when the next is asked'() {
            await withFactory(async factory => {
                append(factory, 's', ['A', 'B', 'C', 'D', 'E']);
                const sub = Es.Subscription.new(factory, 'js-ack', 's', null,
                    Es.SubscriptionFlags.MANUAL_ACK);
                sub.set_checkpoint_batch(1);
                const got = [];
                for await (const event of sub) {
                    got.push(event.get_version());
                    if (event.get_version() === 3)
                        break; // 3's body did not finish: not acknowledged
                }
                assertEqual(got, [1, 2, 3], 'delivered');
                assert(!sub.get_active(), 'leaving the loop stops it');
                assertEqual(factory.get_subscription_info('js-ack', null).get_checkpoint(), 2,
                    'acknowledged when the next was asked for');

                const auto = Es.Subscription.new(factory, 'js-auto', 's', null, 0);
                let refused = false;
                try {
                    // eslint-disable-next-line no-unused-vars
                    for await (const _event of auto)
                        break;
                } catch (e) {
                    refused = e instanceof TypeError;
                }
                assert(refused && !auto.get_active(), 'automatic mode refused');

                // Exactly-once fold: save with the position, leave, resume.
                const run = async (stopAfter, saveEvery) => {
                    const s = Es.Subscription.new(factory, 'js-fold', null, null,
                        Es.SubscriptionFlags.KEEP_STATE);
                    let counts = null;
                    const applied = [];
                    for await (const event of s) {
                        if (counts === null) {
                            const state = s.get_state();
                            counts = state ? JSON.parse(text(state)) : {};
                        }
                        counts[event.get_event_type()] = (counts[event.get_event_type()] ?? 0) + 1;
                        applied.push(positionOf(s, event));
                        if (applied.length % saveEvery === 0) {
                            // eslint-disable-next-line no-await-in-loop
                            await s.save_state_async(bytes(JSON.stringify(counts)),
                                positionOf(s, event), null);
                        }
                        if (applied.length === stopAfter)
                            break;
                    }
                    return applied;
                };
                assertEqual(await run(4, 3), [1, 2, 3, 4], 'first run');
                assertEqual(factory.get_subscription_info('js-fold', null).get_checkpoint(), 3,
                    'saved at 3, 4 lost');
                assertEqual(await run(2, 1), [4, 5], 'nothing twice');
                const final = factory.get_subscription_info('js-fold', null);
                assertEqual([final.get_checkpoint(), JSON.parse(text(final.get_state()))],
                    [5, {A: 1, B: 1, C: 1, D: 1, E: 1}], 'the exact fold');
            });
        },
    };
}
