// What the server offers, from GET /v1/capabilities: its ELBOs, guides and optimizers with
// the options each takes, the result formats per resource and the k-hat readings. The
// dashboard keeps no copy of these lists; the server derives them from the engine.

import { api } from './api.js';

let loaded = null;

// The capabilities, fetched once per page load (they change only with a server upgrade,
// which reloads the page). Shared by every page, so no page's abort signal cancels it; a
// failed fetch is not kept: the next caller tries again.
export function capabilities() {
  if (!loaded) {
    loaded = api.get('/v1/capabilities').catch((error) => {
      loaded = null;
      throw error;
    });
  }
  return loaded;
}

export function choiceNames(choices) {
  return (choices || []).map((c) => c.name);
}

// The names of the choices that take `option`; null when the server could not list the
// options just now (then a field for it is shown for every choice).
export function choicesTaking(choices, option) {
  if (!choices?.length || choices.some((c) => !Array.isArray(c.options))) return null;
  return choices.filter((c) => c.options.includes(option)).map((c) => c.name);
}

// Whether the choice `name` takes `option` (true when its options are not known).
export function takes(choices, name, option) {
  const choice = (choices || []).find((c) => c.name === name);
  return !choice || !Array.isArray(choice.options) || choice.options.includes(option);
}
