// How the page follows a bench as it changes (app.js's live updates): when it asks again.

// The page asks api/version every `FASTEST` seconds at most, and at least every `SLOWEST`.
export const FASTEST = 3;
export const SLOWEST = 60;

// Seconds to wait before the next look at api/version after a reading of the bench (its
// requests and redraws) that took `seconds`: five times as long, between `FASTEST` and
// `SLOWEST`, so that following a large bench (its leaderboard ~1 s to read) keeps the
// viewer busy a sixth of the time at most, a small one refreshing every 3 s.
//   pollDelay(0.1) === 3, pollDelay(1.2) === 6, pollDelay(30) === 60
export function pollDelay(seconds) {
  return Math.min(SLOWEST, Math.max(FASTEST, 5 * seconds));
}
