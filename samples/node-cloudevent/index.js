'use strict';
// A sample cloudevent function for kiln's Node.js buildpack.

// handleEvent prints a greeting for each event; an event without a name in
// its data is refused (the framework answers 500 and logs the error).
exports.handleEvent = async (event) => {
  const name = event.data && event.data.name;
  if (!name) {
    throw new Error(`event ${event.id}: data has no name`);
  }
  console.log(`event ${event.id} from ${event.source} (${event.type}): Hello, ${name}!`);
};
