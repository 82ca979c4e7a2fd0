'use strict';
// A sample http function for kiln's Node.js buildpack. Its greeting comes
// from kiln-greeting, a dependency in greeting/ that npm installs.
const { greeting } = require('kiln-greeting');

// helloWorld greets the name given as ?name= or in a JSON body
// {"name": "..."}; it answers JSON when the client asks for it.
exports.helloWorld = (req, res) => {
  const name = req.query.name || (req.body && req.body.name) || '';
  const message = greeting(name);
  if (req.get('accept') === 'application/json') {
    res.json({ message });
    return;
  }
  res.type('text').send(`${message}\n`);
};
