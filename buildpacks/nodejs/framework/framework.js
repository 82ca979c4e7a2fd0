'use strict';
// kiln's Node.js functions framework: serves one http or cloudevent
// function with Node's http module. Standard library only.

const http = require('node:http');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { CloudEventError, parseCloudEvent, isJSONType, mediaType } = require('./cloudevent.js');

/** Largest request body read (bytes); beyond it the answer is 413. */
const MAX_BODY = 32 * 1024 * 1024;
/** How long SIGTERM waits for requests in flight (ms). */
const SHUTDOWN_GRACE_MS = 10000;

/** The request an http function gets: Node's, plus express-like parts. */
class Request extends http.IncomingMessage {
  /** A request header, by case-insensitive name. */
  get(name) {
    return this.headers[String(name).toLowerCase()];
  }

  header(name) {
    return this.get(name);
  }
}

/** The response an http function gets: Node's, plus express-like parts. */
class Response extends http.ServerResponse {
  status(code) {
    this.statusCode = code;
    return this;
  }

  /** set(name, value) or set({name: value, ...}). */
  set(field, value) {
    if (field !== null && typeof field === 'object') {
      for (const [k, v] of Object.entries(field)) this.setHeader(k, v);
    } else {
      this.setHeader(field, value);
    }
    return this;
  }

  header(field, value) {
    return this.set(field, value);
  }

  get(field) {
    return this.getHeader(field);
  }

  /** Content-Type from a full type or a short name (json, html, text). */
  type(t) {
    const short = { json: 'application/json', html: 'text/html', text: 'text/plain', bin: 'application/octet-stream' };
    const ct = short[t] || t;
    return this.set('Content-Type', ct.startsWith('text/') || ct === 'application/json' ? `${ct}; charset=utf-8` : ct);
  }

  /**
   * Sends body and ends the response: a string (text/html unless a type is
   * set), a Buffer (application/octet-stream), or anything else as JSON.
   */
  send(body) {
    if (this.writableEnded) throw new Error('the response was already sent');
    let chunk = body;
    if (chunk === undefined || chunk === null) {
      chunk = '';
    } else if (typeof chunk === 'string') {
      if (!this.hasHeader('Content-Type')) this.type('html');
    } else if (Buffer.isBuffer(chunk) || chunk instanceof Uint8Array) {
      if (!this.hasHeader('Content-Type')) this.type('bin');
    } else {
      return this.json(chunk);
    }
    if (this.statusCode === 204 || this.statusCode === 304) {
      this.removeHeader('Content-Type');
      this.removeHeader('Content-Length');
      chunk = '';
    } else {
      this.setHeader('Content-Length', Buffer.byteLength(chunk));
    }
    if (this.req && this.req.method === 'HEAD') this.end();
    else this.end(chunk);
    return this;
  }

  json(obj) {
    if (!this.hasHeader('Content-Type')) this.type('json');
    const s = JSON.stringify(obj);
    return this.send(s === undefined ? '' : s);
  }

  sendStatus(code) {
    this.status(code);
    if (!this.hasHeader('Content-Type')) this.type('text');
    return this.send(http.STATUS_CODES[code] || String(code));
  }
}

/** Reads the whole body into a Buffer; rejects past MAX_BODY. */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      if (size > MAX_BODY) return; // refused already: the rest is drained
      size += c.length;
      if (size > MAX_BODY) {
        const e = new Error(`request body larger than ${MAX_BODY} bytes`);
        e.status = 413;
        reject(e);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Query parameters: one value is a string, repeated ones an array. */
function parseQuery(searchParams) {
  const q = {};
  for (const [k, v] of searchParams) {
    if (!Object.prototype.hasOwnProperty.call(q, k)) q[k] = v;
    else if (Array.isArray(q[k])) q[k].push(v);
    else q[k] = [q[k], v];
  }
  return q;
}

/**
 * The parsed body of an http request: JSON, form fields, text, or the raw
 * Buffer; {} when empty. Bad JSON throws an error with status 400.
 */
function parseBody(raw, contentType) {
  if (raw.length === 0) return {};
  const mt = mediaType(contentType);
  if (isJSONType(contentType)) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch (e) {
      const err = new Error(`invalid JSON body: ${e.message}`);
      err.status = 400;
      throw err;
    }
  }
  if (mt === 'application/x-www-form-urlencoded') return parseQuery(new URLSearchParams(raw.toString('utf8')));
  if (mt.startsWith('text/')) return raw.toString('utf8');
  return raw;
}

/** "41µs", "1.25ms", "2.5s", as Go prints durations. */
function formatDuration(ns) {
  const us = Number(ns / 1000n);
  if (us < 1000) return `${us}µs`;
  if (us < 1000000) return `${us / 1000}ms`;
  return `${us / 1000000}s`;
}

function oneLine(s) {
  return String(s).split(/\s+/).filter(Boolean).join(' ');
}

/** Answers a one-line plain-text error, unless something was sent already. */
function fail(res, status, message) {
  res.kilnNote = message;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = status;
  if (status === 413) res.setHeader('Connection', 'close');
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end(`${message}\n`);
}

/**
 * The request handler for fn. signature is "http" (fn(req, res)) or
 * "cloudevent" (fn(event), answered 204 once it returns or its promise
 * resolves). log and errorLog take one message each.
 */
function makeHandler(fn, signature, { log = console.log, errorLog = console.error } = {}) {
  return async (req, res) => {
    const start = process.hrtime.bigint();
    let logged = false;
    const logLine = () => {
      if (logged) return;
      logged = true;
      let line = `${req.method} ${req.url} ${res.statusCode} ${formatDuration(process.hrtime.bigint() - start)}`;
      if (res.kilnNote) line += ` ${oneLine(res.kilnNote)}`;
      log(line);
    };
    res.on('finish', logLine);
    res.on('close', logLine);

    let raw;
    try {
      raw = await readBody(req);
    } catch (e) {
      fail(res, e.status || 400, e.message);
      return;
    }
    const url = new URL(req.url, 'http://localhost');

    if (signature === 'cloudevent') {
      let event;
      try {
        event = parseCloudEvent(req.headers, raw);
      } catch (e) {
        if (e instanceof CloudEventError) fail(res, e.status, e.message);
        else fail(res, 500, `internal error: ${e.message}`);
        return;
      }
      try {
        await fn(event);
      } catch (e) {
        errorLog(`function failed on event ${event.id}: ${e && e.stack ? e.stack : e}`);
        fail(res, 500, `function failed on event ${event.id}`);
        res.kilnNote = `function error: ${e && e.message !== undefined ? e.message : e}`;
        return;
      }
      if (!res.headersSent) {
        res.statusCode = 204;
        res.end();
      }
      return;
    }

    req.path = url.pathname;
    req.query = parseQuery(url.searchParams);
    req.rawBody = raw;
    try {
      req.body = parseBody(raw, req.headers['content-type']);
    } catch (e) {
      fail(res, e.status || 400, e.message);
      return;
    }
    try {
      await fn(req, res);
    } catch (e) {
      errorLog(`function failed on ${req.method} ${req.path}: ${e && e.stack ? e.stack : e}`);
      fail(res, 500, 'internal error: the function failed');
      res.kilnNote = `function error: ${e && e.message !== undefined ? e.message : e}`;
    }
  };
}

/**
 * Loads the function name from the file source: CommonJS with require(),
 * ES modules with import().
 */
async function loadFunction(source, name) {
  const file = path.resolve(source);
  let mod;
  try {
    mod = require(file);
  } catch (e) {
    if (e.code !== 'ERR_REQUIRE_ESM') throw e;
    mod = await import(pathToFileURL(file).href);
  }
  let fn = mod ? mod[name] : undefined;
  if (typeof fn !== 'function' && mod && mod.default && typeof mod.default[name] === 'function') {
    fn = mod.default[name];
  }
  if (typeof fn !== 'function') {
    const names = mod && typeof mod === 'object' ? Object.keys(mod).filter((k) => k !== 'default') : [];
    const e = new Error(
      fn === undefined
        ? `function ${name} is not exported by ${file} (it exports: ${names.join(', ') || 'nothing'})`
        : `${name} exported by ${file} is a ${typeof fn}, not a function`,
    );
    e.code = 'KILN_NO_FUNCTION';
    throw e;
  }
  return fn;
}

/** An http.Server with the express-like request and response classes. */
function createServer(fn, signature, opts) {
  return http.createServer({ IncomingMessage: Request, ServerResponse: Response }, makeHandler(fn, signature, opts));
}

/**
 * Stops server on SIGTERM or SIGINT: no new connections, requests in
 * flight get SHUTDOWN_GRACE_MS to finish, then the process exits 0.
 */
function stopOnSignals(server, log = console.log) {
  let stopping = false;
  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    log(`shutting down on ${sig} (grace period ${SHUTDOWN_GRACE_MS / 1000}s)`);
    server.close(() => {
      log('stopped');
      process.exit(0);
    });
    if (server.closeIdleConnections) server.closeIdleConnections();
    setTimeout(() => {
      log('stopped: grace period over');
      process.exit(0);
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

module.exports = {
  MAX_BODY,
  Request,
  Response,
  createServer,
  formatDuration,
  loadFunction,
  makeHandler,
  parseBody,
  parseQuery,
  stopOnSignals,
};
