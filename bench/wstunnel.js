// wstunnel.js - runs node-reverse-wstunnel (the npm package, installed by bench.py into a
// temporary directory under build/) for the benchmarks, on loopback only. Its own code is used
// as shipped with two changes made from here: every listening socket it opens (the WebSocket
// server and each device's public port, which it binds on all interfaces) is bound to
// 127.0.0.1, and WebSocket messages that arrive before the tunnel listens for them are held
// rather than dropped (see below: without that, iperf3 and wrk stall on their first bytes).
//
//   node wstunnel.js MODULES_DIR server PORT
//   node wstunnel.js MODULES_DIR client ws://127.0.0.1:PORT PUBLIC_PORT:HOST:PORT [...]
//
// The client form starts one reverse-tunnel client (one control WebSocket) per tunnel given.
'use strict';
const net = require('net');
const path = require('path');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
        const cb = args.find((a) => typeof a === 'function');
        return listen.call(this, { port: Number(args[0]), host: '127.0.0.1' }, cb);
    }
    return listen.apply(this, args);
};

const [modules, mode, ...rest] = process.argv.slice(2);

// As shipped, the device side starts listening to a data WebSocket's messages only once its
// own connection to the service is up; whatever the public client sent first (an HTTP request,
// iperf3's cookie) arrives before that and is dropped, and the connection stalls. Messages
// emitted while nobody listens are held here and handed to the first 'message' listener.
const WebSocketConnection = require(path.resolve(modules, 'websocket', 'lib',
    'WebSocketConnection'));
const emit = WebSocketConnection.prototype.emit;
WebSocketConnection.prototype.emit = function (name, ...args) {
    if (name === 'message' && this.listenerCount('message') === 0) {
        if (!this.__held) {
            this.__held = [];
            this.on('newListener', (ev) => {
                if (ev !== 'message' || !this.__held.length) return;
                const held = this.__held.splice(0);
                setImmediate(() => held.forEach((a) => emit.call(this, 'message', ...a)));
            });
        }
        this.__held.push(args);
        return true;
    }
    return emit.call(this, name, ...args);
};

const wst = require(path.resolve(modules, 'node-reverse-wstunnel', 'lib', 'wst_wrapper'));
if (mode === 'server') {
    new wst.server_reverse(Number(rest[0])).start();
} else if (mode === 'client') {
    const url = rest[0];
    for (const t of rest.slice(1)) {
        const [pub, host, port] = t.split(':');
        new wst.client_reverse().start(pub, url, host + ':' + port);
    }
} else {
    console.error('usage: wstunnel.js MODULES_DIR server PORT | client URL PUB:HOST:PORT...');
    process.exit(2);
}
