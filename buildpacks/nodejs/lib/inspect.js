'use strict';
// Build helper: node inspect.js APP [FUNC_SRC]
// Prints two lines: the function file, relative to APP (FUNC_SRC, else
// package.json "main", else index.js), and the number of dependencies
// (dependencies and optionalDependencies) package.json declares.
// Errors are one line on stderr, exit 1.

const fs = require('node:fs');
const path = require('node:path');

function die(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const [app, funcSrc = ''] = process.argv.slice(2);
if (!app) die('usage: inspect.js APP [FUNC_SRC]');

let pkg = {};
const pkgPath = path.join(app, 'package.json');
if (fs.existsSync(pkgPath)) {
  try {
    pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
  } catch (e) {
    die(`package.json is not valid JSON: ${e.message}`);
  }
  if (pkg === null || typeof pkg !== 'object' || Array.isArray(pkg)) die('package.json must hold a JSON object');
}

let wanted;
let from;
if (funcSrc) {
  wanted = funcSrc;
  from = 'FUNC_SRC';
} else if (typeof pkg.main === 'string' && pkg.main !== '') {
  wanted = pkg.main;
  from = 'package.json "main"';
} else {
  wanted = 'index.js';
  from = null;
}

let file;
try {
  file = require.resolve(path.resolve(app, wanted));
} catch {
  if (from) die(`${from} is "${wanted}", which is not a file in the app`);
  die('no function file: package.json has no "main" and there is no index.js');
}
const rel = path.relative(app, file);
if (rel.startsWith('..') || path.isAbsolute(rel)) die(`${from || 'the function file'} "${wanted}" is outside the app`);
if (!/\.(c|m)?js$/.test(rel)) die(`the function file ${rel} is not a JavaScript file (.js, .mjs or .cjs)`);

let deps = 0;
for (const field of ['dependencies', 'optionalDependencies']) {
  const d = pkg[field];
  if (d === undefined) continue;
  if (d === null || typeof d !== 'object' || Array.isArray(d)) die(`package.json "${field}" must be an object`);
  deps += Object.keys(d).length;
}
process.stdout.write(`${rel}\n${deps}\n`);
