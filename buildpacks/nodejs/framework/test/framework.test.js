'use strict';
// node --test buildpacks/nodejs/framework/test/*.test.js
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { createServer, formatDuration, loadFunction } = require('../framework.js');

/** Serves fn on a free port for the duration of body(request). */
async function withServer(fn, signature, body) {
  const logs = [];
  const errors = [];
  const server = createServer(fn, signature, { log: (l) => logs.push(l), errorLog: (l) => errors.push(l) });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const request = (method, url, { headers = {}, data } = {}) =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: url, headers, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(data);
    });
  try {
    await body(request, logs, errors);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

test('http: express-like req and res', async () => {
  const fn = (req, res) => {
    assert.equal(req.get('X-Test'), 'yes');
    res.status(201).set('X-Fn', 'hello').json({ method: req.method, path: req.path, query: req.query, body: req.body });
  };
  await withServer(fn, 'http', async (request, logs) => {
    const r = await request('POST', '/a/b?x=1&x=2&y=3', {
      headers: { 'content-type': 'application/json', 'x-test': 'yes' },
      data: '{"k":[1]}',
    });
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-fn'], 'hello');
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(r.body), { method: 'POST', path: '/a/b', query: { x: ['1', '2'], y: '3' }, body: { k: [1] } });
    assert.match(logs[0], /^POST \/a\/b\?x=1&x=2&y=3 201 [0-9.]+(µs|ms|s)$/);
  });
});

test('http: bodies by content type, send() of strings and buffers', async () => {
  const fn = (req, res) => {
    if (req.path === '/buf') return res.send(Buffer.from('bytes'));
    if (req.path === '/none') return res.status(204).send('ignored');
    const b = req.body;
    res.send(`${typeof b}:${Buffer.isBuffer(b) ? 'buffer' : JSON.stringify(b)}:${req.rawBody.length}`);
  };
  await withServer(fn, 'http', async (request) => {
    const form = await request('POST', '/', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, data: 'a=1&b=x%20y' });
    assert.equal(form.body, 'object:{"a":"1","b":"x y"}:11');
    assert.equal(form.headers['content-type'], 'text/html; charset=utf-8');
    const text = await request('POST', '/', { headers: { 'content-type': 'text/plain' }, data: 'hi' });
    assert.equal(text.body, 'string:"hi":2');
    const raw = await request('POST', '/', { headers: { 'content-type': 'application/octet-stream' }, data: 'zz' });
    assert.equal(raw.body, 'object:buffer:2');
    const empty = await request('GET', '/');
    assert.equal(empty.body, 'object:{}:0');
    const buf = await request('GET', '/buf');
    assert.equal(buf.headers['content-type'], 'application/octet-stream');
    assert.equal(buf.body, 'bytes');
    const none = await request('GET', '/none');
    assert.equal(none.status, 204);
    assert.equal(none.body, '');
  });
});

test('http: bad JSON is 400 and the function is not called', async () => {
  let called = false;
  await withServer(() => { called = true; }, 'http', async (request, logs) => {
    const r = await request('POST', '/', { headers: { 'content-type': 'application/json' }, data: '{x' });
    assert.equal(r.status, 400);
    assert.match(r.body, /^invalid JSON body: /);
    assert.match(logs[0], /^POST \/ 400 .* invalid JSON body: /);
  });
  assert.equal(called, false);
});

test('http: thrown errors and rejected promises are 500 and logged with the stack', async () => {
  const fn = (req) => {
    if (req.path === '/sync') throw new Error('sync boom');
    return new Promise((resolve, reject) => setTimeout(() => reject(new Error('async boom')), 5));
  };
  await withServer(fn, 'http', async (request, logs, errors) => {
    const a = await request('GET', '/sync');
    assert.equal(a.status, 500);
    assert.equal(a.body, 'internal error: the function failed\n');
    const b = await request('GET', '/async');
    assert.equal(b.status, 500);
    assert.match(errors[0], /^function failed on GET \/sync: Error: sync boom\n\s+at /);
    assert.match(errors[1], /async boom/);
    assert.match(logs[1], /^GET \/async 500 .* function error: async boom$/);
  });
});

test('http: async handlers answer when their promise resolves', async () => {
  const fn = async (req, res) => {
    await new Promise((r) => setTimeout(r, 10));
    res.sendStatus(202);
  };
  await withServer(fn, 'http', async (request) => {
    const r = await request('GET', '/');
    assert.equal(r.status, 202);
    assert.equal(r.body, 'Accepted');
  });
});

test('cloudevent: 204 after the function, 400 for malformed, 500 for failures', async () => {
  const seen = [];
  const fn = async (event) => {
    if (event.type === 'fail') throw new Error(`refusing ${event.id}`);
    seen.push([event.id, event.data]);
  };
  await withServer(fn, 'cloudevent', async (request, logs, errors) => {
    const ok = await request('POST', '/', {
      headers: { 'ce-id': '1', 'ce-source': '/s', 'ce-specversion': '1.0', 'ce-type': 't', 'content-type': 'application/json' },
      data: '{"n":1}',
    });
    assert.equal(ok.status, 204);
    const st = await request('POST', '/', {
      headers: { 'content-type': 'application/cloudevents+json' },
      data: '{"specversion":"1.0","id":"2","source":"/s","type":"t","data":"x"}',
    });
    assert.equal(st.status, 204);
    assert.deepEqual(seen, [['1', { n: 1 }], ['2', 'x']]);
    const bad = await request('POST', '/', { headers: { 'ce-source': '/s', 'ce-specversion': '1.0', 'ce-type': 't' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body, 'malformed CloudEvent: missing required attribute "id"\n');
    const failed = await request('POST', '/', { headers: { 'ce-id': '3', 'ce-source': '/s', 'ce-specversion': '1.0', 'ce-type': 'fail' } });
    assert.equal(failed.status, 500);
    assert.equal(failed.body, 'function failed on event 3\n');
    assert.match(errors[0], /^function failed on event 3: Error: refusing 3\n/);
    assert.match(logs[3], /^POST \/ 500 .* function error: refusing 3$/);
  });
});

test('loadFunction: CommonJS and ES modules, clear errors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ff-'));
  try {
    fs.writeFileSync(path.join(dir, 'cjs.js'), 'exports.hello = () => "cjs"; exports.value = 1;\n');
    fs.writeFileSync(path.join(dir, 'esm.mjs'), 'export function hello() { return "esm"; }\n');
    assert.equal((await loadFunction(path.join(dir, 'cjs.js'), 'hello'))(), 'cjs');
    assert.equal((await loadFunction(path.join(dir, 'esm.mjs'), 'hello'))(), 'esm');
    await assert.rejects(loadFunction(path.join(dir, 'cjs.js'), 'nope'), /function nope is not exported by .*cjs\.js \(it exports: hello, value\)/);
    await assert.rejects(loadFunction(path.join(dir, 'cjs.js'), 'value'), /value exported by .* is a number, not a function/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('formatDuration prints like Go', () => {
  assert.equal(formatDuration(41000n), '41µs');
  assert.equal(formatDuration(1250000n), '1.25ms');
  assert.equal(formatDuration(2500000000n), '2.5s');
});
