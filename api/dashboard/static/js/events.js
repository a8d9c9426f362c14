// A small synchronous event bus: how the sections of a page tell each other what changed
// without holding references to one another.

export function eventBus() {
  const listeners = new Map();
  return {
    // Calls `fn(data)` on each `emit(event, data)`; returns the function that stops it.
    on(event, fn) {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event).add(fn);
      return () => listeners.get(event)?.delete(fn);
    },
    emit(event, data) {
      for (const fn of [...(listeners.get(event) || [])]) fn(data);
    },
  };
}

// Calls every cleanup in `cleanups`, last mounted first (one that throws does not stop
// the others), and empties the list.
export function cleanupAll(cleanups) {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try { cleanup?.(); } catch (error) { console.error(error); }
  }
}
