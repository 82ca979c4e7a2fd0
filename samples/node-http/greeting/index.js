'use strict';

/** "Hello, NAME!", or "Hello, World!" without a name. */
exports.greeting = (name) => `Hello, ${name || 'World'}!`;
