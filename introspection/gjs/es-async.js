// es-async.js: es-glib for GJS programs that use async/await.
//
//   import Es from 'gi://Es?version=1.0';
//   import {promisifyAll} from 'file:///usr/share/es-glib-1.0/gjs/es-async.js';
//   promisifyAll(Es);
//
//   const factory = await Es.SqliteStreamFactory.new_async(path, null);
//   const stream = await factory.open_stream_async('cart-7', null);
//   await stream.write_async(events, Es.VERSION_ANY, null);
//   for await (const event of await stream.read_async(0, null, null))
//       print(event.get_version());
//
// promisifyAll() finds every FOO_async method (and static function) of the
// namespace that has a FOO_finish twin in the typelib and hands each pair
// to Gio._promisify(), so that FOO_async without a callback returns a
// Promise; API added later is covered too. It also makes
// Es.EventEnumerator and Es.StreamInfoEnumerator async-iterable
// (`for await`), fetching pages with next_batch_async():
//
//   for await (const info of await factory.list_streams_async('cart-', 0, null))
//       print(info.get_stream_id(), info.get_event_count());
//
// It also makes an Es.Subscription async-iterable (since 0.2; see
// subscriptionIterator below): `for await (const event of subscription)`.
//
// Rejections are GLib.Error, with their domain and code
// (error.matches(Es.error_quark(), Es.Error.CLOSED)).
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import Gio from 'gi://Gio';
import GIRepository from 'gi://GIRepository?version=2.0';

/** How many items a `for await` over an enumerator fetches at a time. */
export const READ_BATCH = 1024;

function methodsOf(info) {
    const type = info.get_type();
    let count, get;
    if (type === GIRepository.InfoType.OBJECT) {
        count = GIRepository.object_info_get_n_methods(info);
        get = GIRepository.object_info_get_method;
    } else if (type === GIRepository.InfoType.INTERFACE) {
        count = GIRepository.interface_info_get_n_methods(info);
        get = GIRepository.interface_info_get_method;
    } else {
        return [];
    }
    const methods = [];
    for (let i = 0; i < count; i++)
        methods.push(get(info, i));
    return methods;
}

/**
 * Promisifies every FOO_async/FOO_finish pair of a namespace.
 *
 * @param {object} namespace the imported module, e.g. Es
 * @param {string} [name] its GIR namespace, 'Es' by default
 * @returns {string[]} the pairs, as 'Class.FOO_async'
 */
export function promisifyAll(namespace, name = 'Es') {
    const repository = GIRepository.Repository.get_default();
    const done = [];
    for (let i = 0; i < repository.get_n_infos(name); i++) {
        const info = repository.get_info(name, i);
        const methods = methodsOf(info);
        const names = new Set(methods.map(m => m.get_name()));
        for (const method of methods) {
            const asyncName = method.get_name();
            if (!asyncName.endsWith('_async'))
                continue;
            const finishName = `${asyncName.slice(0, -'_async'.length)}_finish`;
            if (!names.has(finishName))
                continue;
            const klass = namespace[info.get_name()];
            const isMethod = GIRepository.function_info_get_flags(method) &
                GIRepository.FunctionInfoFlags.IS_METHOD;
            Gio._promisify(isMethod ? klass.prototype : klass, asyncName, finishName);
            done.push(`${info.get_name()}.${asyncName}`);
        }
    }

    // Es.EventEnumerator and (since 0.2) Es.StreamInfoEnumerator.
    for (const enumerator of ['EventEnumerator', 'StreamInfoEnumerator']) {
        if (!namespace[enumerator])
            continue;
        namespace[enumerator].prototype[Symbol.asyncIterator] = async function* () {
            for (;;) {
                // eslint-disable-next-line no-await-in-loop
                const page = await this.next_batch_async(READ_BATCH, null);
                if (page.length === 0)
                    return;
                yield* page;
            }
        };
    }
    if (namespace.Subscription)
        namespace.Subscription.prototype[Symbol.asyncIterator] = subscriptionIterator;
    return done;
}

/**
 * The position of an event in a subscription, as acknowledge() and
 * save_state() take it: its sequence id for `@all`, its version for a
 * stream.
 *
 * @param {object} subscription an Es.Subscription
 * @param {object} event an Es.StoredEvent it delivered
 * @returns {number} the position
 */
export function positionOf(subscription, event) {
    return subscription.get_stream_id() === '@all'
        ? event.get_sequence_id() : event.get_version();
}

// `for await (const event of subscription)`: starts it (start_async) when
// it is not active and gives its events in order, the loop body being the
// handler. With MANUAL_ACK, asking for the next event acknowledges the
// previous one (at-least-once: an event whose body threw, or the last one
// before a break, comes again after a restart); with KEEP_STATE the body
// calls save_state_async(). The automatic mode (NONE) is refused: its
// checkpoint would pass events queued here before their body ran. Ends when
// the subscription stops; throws the GLib.Error of ::error. Leaving the loop
// (break, return, throw) stops the subscription, which stores what was
// acknowledged.
async function* subscriptionIterator() {
    const flags = this.get_flags();
    const manualAck = (flags & 1) !== 0;  // ES_SUBSCRIPTION_FLAGS_MANUAL_ACK
    const keepState = (flags & 2) !== 0;  // ES_SUBSCRIPTION_FLAGS_KEEP_STATE
    if (!manualAck && !keepState) {
        throw new TypeError(`for await over the subscription '${this.get_name()}' needs ` +
            'Es.SubscriptionFlags.MANUAL_ACK or KEEP_STATE: with the automatic checkpoint ' +
            'the position would move past events still queued for the loop body');
    }
    if (this.get_active() && this.get_position() !== this.get_checkpoint()) {
        throw new Error(`The subscription '${this.get_name()}' has delivered events ` +
            `already (position ${this.get_position()}, checkpoint ${this.get_checkpoint()}): ` +
            'let for await start it');
    }
    const queue = [];
    let error = null;
    let stopped = false;
    let wake = null;
    const signal = () => {
        if (wake) {
            const w = wake;
            wake = null;
            w();
        }
    };
    const handlers = [
        this.connect('event', (_s, event) => {
            queue.push(event);
            signal();
        }),
        this.connect('error', (_s, e) => {
            error = e;
            signal();
        }),
        this.connect('notify::active', () => {
            if (!this.get_active()) {
                stopped = true;
                signal();
            }
        }),
    ];
    try {
        if (!this.get_active())
            await this.start_async(null);
        for (;;) {
            if (error)
                throw error;
            if (queue.length > 0) {
                const event = queue.shift();
                yield event;
                // The body for it has finished: it is handled.
                if (manualAck && this.get_active())
                    this.acknowledge(positionOf(this, event));
                continue;
            }
            if (stopped)
                return;
            // eslint-disable-next-line no-await-in-loop
            await new Promise(resolve => {
                wake = resolve;
            });
        }
    } finally {
        for (const handler of handlers)
            this.disconnect(handler);
        if (this.get_active())
            await this.stop_async(null);
    }
}
