'use strict';
// The web process of a Node.js function image:
//   node /layers/dev.kiln.nodejs/framework/server.js
// Environment (the buildpack sets defaults in the image):
//   FUNC_SOURCE (or FUNCTION_SOURCE)  the file that exports the function
//   FUNC_NAME (or FUNCTION_TARGET)    the exported function to serve
//   FUNC_SIGNATURE_TYPE (or FUNCTION_SIGNATURE_TYPE)  http (default) or cloudevent
//   PORT                              port to listen on (default 8080)

const { createServer, loadFunction, stopOnSignals } = require('./framework.js');

function setting(...names) {
  for (const n of names) {
    if (process.env[n]) return process.env[n];
  }
  return '';
}

function die(message) {
  console.error(`kiln functions framework: ${message}`);
  process.exit(1);
}

async function main() {
  const source = setting('FUNC_SOURCE', 'FUNCTION_SOURCE') || 'index.js';
  const name = setting('FUNC_NAME', 'FUNCTION_TARGET');
  const signature = setting('FUNC_SIGNATURE_TYPE', 'FUNCTION_SIGNATURE_TYPE') || 'http';
  const port = Number(setting('PORT') || 8080);
  if (!name) die('FUNC_NAME is not set: name the exported function to serve');
  if (signature !== 'http' && signature !== 'cloudevent') {
    die(`FUNC_SIGNATURE_TYPE must be http or cloudevent, not "${signature}"`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) die(`PORT must be a port number, not "${process.env.PORT}"`);

  let fn;
  try {
    fn = await loadFunction(source, name);
  } catch (e) {
    // The module's own failure: its stack says where.
    if (!e || e.code !== 'KILN_NO_FUNCTION') console.error(e && e.stack ? e.stack : e);
    die(`cannot load function ${name} from ${source}: ${e && e.message}`);
  }
  process.on('unhandledRejection', (reason) => {
    console.error(`unhandled promise rejection: ${reason && reason.stack ? reason.stack : reason}`);
  });
  const server = createServer(fn, signature);
  server.on('error', (e) => die(`cannot listen on :${port}: ${e.message}`));
  server.listen(port, () => console.log(`serving ${signature} function ${name} on :${server.address().port}`));
  stopOnSignals(server);
}

main();
