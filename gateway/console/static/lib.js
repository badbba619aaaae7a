// The console's view layer: Preact with htm templates (tagged template literals, no build step),
// and a small observable store for state shared between screens.
import { Fragment, h, render } from "./vendor/preact.mjs";
import {
  useCallback,
  useEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
} from "./vendor/preact-hooks.mjs";
import htm from "./vendor/htm.mjs";

export const html = htm.bind(h);
export { Fragment, h, render, useCallback, useEffect, useMemo, useReducer, useRef, useState };

/** A value that components can read and follow: `store.get()`, `store.set(v)`,
 * `store.subscribe(fn)` (returns the unsubscribe function), `useStore(store)` in a component. */
export function store(initial) {
  let value = initial;
  const listeners = new Set();
  return {
    get: () => value,
    set(next) {
      value = typeof next === "function" ? next(value) : next;
      for (const listener of [...listeners]) listener(value);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export function useStore(source) {
  const [value, setValue] = useState(source.get());
  useEffect(() => {
    setValue(source.get());
    return source.subscribe(setValue);
  }, [source]);
  return value;
}
