// How the page follows a bench as it changes (app.js's live updates): when it asks again.

// The page asks api/version every `FASTEST` seconds at most, and at least every `SLOWEST`.
const FASTEST = 3;
const SLOWEST = 60;

// Seconds to wait before the next look at api/version after a reading of the bench (its
// requests and redraws) that took `seconds`: five times as long, between `FASTEST` and
// `SLOWEST`, so that following a large bench (its leaderboard ~1 s to read) keeps the
// viewer busy a sixth of the time at most, a small one refreshing every 3 s.
//   pollDelay(0.1) === 3, pollDelay(1.2) === 6, pollDelay(30) === 60
export function pollDelay(seconds) {
  return Math.min(SLOWEST, Math.max(FASTEST, 5 * seconds));
}

// The parts of the bench (`bench`, `results`, `profile`, `models`, `morph`) whose digest
// differs between two answers of api/version, `before` (null: none yet, every part) and
// `now`, as a Set: the page reads again those alone.
//   changedParts({parts: {results: "a", profile: "b"}}, {parts: {results: "c", profile: "b"}})
//   is new Set(["results"])
export function changedParts(before, now) {
  return new Set(Object.keys(now.parts).filter((part) => before?.parts?.[part] !== now.parts[part]));
}
