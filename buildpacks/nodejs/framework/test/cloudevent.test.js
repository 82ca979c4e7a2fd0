'use strict';
// node --test buildpacks/nodejs/framework/test/*.test.js
const test = require('node:test');
const assert = require('node:assert/strict');
const { CloudEvent, CloudEventError, parseCloudEvent } = require('../cloudevent.js');

const binary = {
  'ce-id': '42',
  'ce-source': '/test',
  'ce-specversion': '1.0',
  'ce-type': 'dev.kiln.test',
};

function rejects(headers, body, pattern) {
  assert.throws(
    () => parseCloudEvent(headers, Buffer.from(body)),
    (e) => e instanceof CloudEventError && e.status === 400 && pattern.test(e.message) && !e.message.includes('\n'),
  );
}

test('binary mode: attributes from ce-* headers, JSON data parsed', () => {
  const e = parseCloudEvent(
    { ...binary, 'ce-subject': 'a%20b', 'ce-traceparent': 'tp', 'content-type': 'application/json' },
    Buffer.from('{"msg":"hi"}'),
  );
  assert.ok(e instanceof CloudEvent);
  assert.equal(e.id, '42');
  assert.equal(e.source, '/test');
  assert.equal(e.type, 'dev.kiln.test');
  assert.equal(e.specversion, '1.0');
  assert.equal(e.subject, 'a b');
  assert.equal(e.datacontenttype, 'application/json');
  assert.deepEqual(e.data, { msg: 'hi' });
  assert.deepEqual(e.extensions, { traceparent: 'tp' });
  assert.equal(e.traceparent, 'tp');
});

test('binary mode: text data is a string, other data a Buffer, no body no data', () => {
  assert.equal(parseCloudEvent({ ...binary, 'content-type': 'text/plain' }, Buffer.from('hi')).data, 'hi');
  const b = parseCloudEvent({ ...binary, 'content-type': 'application/octet-stream' }, Buffer.from([1, 2]));
  assert.ok(Buffer.isBuffer(b.data));
  assert.equal(parseCloudEvent(binary, Buffer.alloc(0)).data, undefined);
});

test('structured mode: data, data_base64 and extensions', () => {
  const ct = { 'content-type': 'application/cloudevents+json; charset=utf-8' };
  const e = parseCloudEvent(
    ct,
    Buffer.from(
      JSON.stringify({
        specversion: '1.0',
        id: 's-1',
        source: '/s',
        type: 't',
        time: '2024-05-06T07:08:09.123Z',
        count: 3,
        data: { a: [1, 2] },
      }),
    ),
  );
  assert.equal(e.id, 's-1');
  assert.equal(e.time, '2024-05-06T07:08:09.123Z');
  assert.deepEqual(e.data, { a: [1, 2] });
  assert.equal(e.extensions.count, 3);
  const b = parseCloudEvent(
    ct,
    Buffer.from('{"specversion":"1.0","id":"b","source":"/s","type":"t","data_base64":"aGVsbG8="}'),
  );
  assert.equal(b.data.toString(), 'hello');
  assert.match(String(e), /^id=s-1 source=\/s type=t specversion=1\.0 time=.* count=3$/);
});

test('malformed events are refused with one line', () => {
  const { 'ce-id': _, ...noID } = binary;
  rejects(noID, '', /^malformed CloudEvent: missing required attribute "id"$/);
  rejects({ ...binary, 'ce-specversion': '0.3' }, '', /unsupported specversion "0\.3" \(want "1\.0"\)/);
  rejects({ ...binary, 'content-type': 'application/json' }, '{x', /^malformed CloudEvent: data is not valid JSON: /);
  rejects({ ...binary, 'ce-time': 'yesterday' }, '', /attribute "time" is not an RFC 3339 timestamp/);
  const ct = { 'content-type': 'application/cloudevents+json' };
  rejects(ct, '{"id":', /^malformed CloudEvent: invalid JSON: /);
  rejects(ct, '', /^malformed CloudEvent: invalid JSON: empty body$/);
  rejects(ct, '[1]', /the event must be a JSON object/);
  rejects(ct, '{"specversion":"1.0","id":"x","source":"/s"}', /missing required attribute "type"/);
  rejects(ct, '{"specversion":"1.0","id":7,"source":"/s","type":"t"}', /attribute "id" must be a JSON string/);
  rejects(ct, '{"specversion":"1.0","id":"x","source":"/s","type":"t","ext":{}}', /"ext" must be a string, number or boolean/);
  rejects(ct, '{"specversion":"1.0","id":"x","source":"/s","type":"t","data":1,"data_base64":"AA=="}', /both data and data_base64/);
  rejects(ct, '{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"!!"}', /data_base64 is not valid base64/);
  rejects({ 'content-type': 'application/cloudevents-batch+json' }, '[]', /^not a CloudEvent: batched events/);
  rejects({ 'content-type': 'application/json' }, '{}', /^not a CloudEvent: no ce-specversion header/);
});
