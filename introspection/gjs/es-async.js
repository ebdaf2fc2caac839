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
    return done;
}
