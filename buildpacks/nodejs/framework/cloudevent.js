'use strict';
// CloudEvents 1.0 over HTTP: binary mode (attributes in ce-* headers, the
// body is the data) and structured mode (Content-Type
// application/cloudevents+json, the body is the whole event).

const REQUIRED = ['specversion', 'id', 'source', 'type'];
// Attributes the spec defines; every other one is an extension.
const CORE = new Set(['specversion', 'id', 'source', 'type', 'datacontenttype', 'dataschema', 'subject', 'time']);
// Properties of CloudEvent that an extension may not shadow.
const RESERVED = new Set([...CORE, 'data', 'data_base64', 'extensions']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** A request that is not a valid CloudEvent; message is one line. */
class CloudEventError extends Error {
  constructor(message, status = 400) {
    super(message);
    this.name = 'CloudEventError';
    this.status = status;
  }
}

/**
 * A CloudEvents 1.0 event. Extension attributes are in `extensions` and,
 * unless their name is taken, also properties of the event.
 */
class CloudEvent {
  constructor(attrs, data) {
    this.specversion = attrs.specversion;
    this.id = attrs.id;
    this.source = attrs.source;
    this.type = attrs.type;
    this.datacontenttype = attrs.datacontenttype;
    this.dataschema = attrs.dataschema;
    this.subject = attrs.subject;
    this.time = attrs.time;
    this.data = data;
    this.extensions = {};
    for (const [k, v] of Object.entries(attrs)) {
      if (CORE.has(k)) continue;
      this.extensions[k] = v;
      if (!RESERVED.has(k)) this[k] = v;
    }
  }

  toString() {
    let s = `id=${this.id} source=${this.source} type=${this.type} specversion=${this.specversion}`;
    for (const k of ['subject', 'time', 'datacontenttype']) {
      if (this[k] !== undefined) s += ` ${k}=${this[k]}`;
    }
    for (const k of Object.keys(this.extensions).sort()) s += ` ${k}=${this.extensions[k]}`;
    return s;
  }
}

function mediaType(contentType) {
  return String(contentType || '').split(';')[0].trim().toLowerCase();
}

function isJSONType(contentType) {
  const t = mediaType(contentType);
  return t === 'application/json' || t === 'text/json' || t.endsWith('+json');
}

/** Checks the required attributes, specversion and time. */
function checkAttributes(attrs) {
  for (const k of REQUIRED) {
    if (attrs[k] === undefined || attrs[k] === '') {
      throw new CloudEventError(`malformed CloudEvent: missing required attribute "${k}"`);
    }
  }
  if (attrs.specversion !== '1.0') {
    throw new CloudEventError(`malformed CloudEvent: unsupported specversion "${attrs.specversion}" (want "1.0")`);
  }
  if (attrs.time !== undefined && !RFC3339.test(attrs.time)) {
    throw new CloudEventError(`malformed CloudEvent: attribute "time" is not an RFC 3339 timestamp: "${attrs.time}"`);
  }
}

/** The data of a binary-mode event: JSON parsed, text as a string, else bytes. */
function decodeBody(body, contentType) {
  if (!body || body.length === 0) return undefined;
  if (isJSONType(contentType)) {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new CloudEventError(`malformed CloudEvent: data is not valid JSON: ${e.message}`);
    }
  }
  if (mediaType(contentType).startsWith('text/')) return body.toString('utf8');
  return body;
}

// The HTTP binding percent-encodes header values; one that does not decode
// is kept as it is.
function decodeHeader(value) {
  const v = String(value).trim();
  if (!v.includes('%')) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

function parseBinary(headers, body) {
  const attrs = {};
  for (const [name, value] of Object.entries(headers)) {
    const k = name.toLowerCase();
    if (!k.startsWith('ce-') || k.length === 3 || k === 'ce-datacontenttype') continue;
    attrs[k.slice(3)] = decodeHeader(Array.isArray(value) ? value[0] : value);
  }
  checkAttributes(attrs);
  if (headers['content-type']) attrs.datacontenttype = headers['content-type'];
  return new CloudEvent(attrs, decodeBody(body, attrs.datacontenttype));
}

function parseStructured(body) {
  let obj;
  try {
    obj = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new CloudEventError(`malformed CloudEvent: invalid JSON: ${body.length ? e.message : 'empty body'}`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new CloudEventError('malformed CloudEvent: invalid JSON: the event must be a JSON object');
  }
  const attrs = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'data' || k === 'data_base64' || v === null) continue;
    if (CORE.has(k) && typeof v !== 'string') {
      throw new CloudEventError(`malformed CloudEvent: attribute "${k}" must be a JSON string`);
    }
    if (typeof v === 'object') {
      throw new CloudEventError(`malformed CloudEvent: attribute "${k}" must be a string, number or boolean`);
    }
    attrs[k] = v;
  }
  checkAttributes(attrs);
  const hasData = obj.data !== undefined && obj.data !== null;
  const hasData64 = obj.data_base64 !== undefined && obj.data_base64 !== null;
  let data;
  if (hasData && hasData64) {
    throw new CloudEventError('malformed CloudEvent: both data and data_base64 are present');
  } else if (hasData64) {
    const s = obj.data_base64;
    if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.trim()) || s.trim().length % 4 !== 0) {
      throw new CloudEventError('malformed CloudEvent: data_base64 is not valid base64');
    }
    data = Buffer.from(s.trim(), 'base64');
  } else if (hasData) {
    data = obj.data;
  }
  return new CloudEvent(attrs, data);
}

/**
 * Reads a CloudEvent from an HTTP request's headers (lower-case names, as
 * Node gives them) and body (a Buffer). Throws CloudEventError with a
 * one-line message starting "malformed CloudEvent: " or "not a CloudEvent: ".
 */
function parseCloudEvent(headers, body) {
  const mt = mediaType(headers['content-type']);
  if (mt === 'application/cloudevents+json') return parseStructured(body);
  if (mt === 'application/cloudevents-batch+json') {
    throw new CloudEventError('not a CloudEvent: batched events (application/cloudevents-batch+json) are not supported');
  }
  if (mt.startsWith('application/cloudevents')) {
    throw new CloudEventError(`not a CloudEvent: unsupported structured format "${mt}" (want application/cloudevents+json)`);
  }
  if (headers['ce-specversion'] === undefined && headers['ce-id'] === undefined) {
    throw new CloudEventError('not a CloudEvent: no ce-specversion header and Content-Type is not application/cloudevents+json');
  }
  return parseBinary(headers, body);
}

module.exports = { CloudEvent, CloudEventError, parseCloudEvent, isJSONType, mediaType };
