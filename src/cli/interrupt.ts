/**
 * Commands that set things up for a while (bench, demo) clean up when they are
 * interrupted: SIGINT or SIGTERM runs what they registered (their own pins,
 * the processes they started, a network namespace), then the process exits
 * with 128 + the signal's number, as a shell expects. A closed stdout
 * (`epolltrack demo | head`) cleans up the same way (src/cli/main.ts).
 */
import { constants } from 'node:os';

type Cleanup = () => void;
const pending = new Set<Cleanup>();
let installed = false;

/** Run every pending cleanup (newest first), then exit with `code`. */
export function exitAfterCleanup(code: number): never {
  for (const c of [...pending].reverse()) {
    try {
      c();
    } catch {
      /* exiting anyway: the next one still runs */
    }
  }
  pending.clear();
  process.exit(code);
}

function onSignal(sig: NodeJS.Signals): void {
  exitAfterCleanup(128 + constants.signals[sig]);
}

/**
 * `cleanup`, run once: by the returned function (the command's own `finally`)
 * or on an interruption before that, whichever comes first.
 */
export function cleanupOnce(cleanup: Cleanup): () => void {
  if (!installed) {
    installed = true;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  pending.add(cleanup);
  return () => {
    if (pending.delete(cleanup)) cleanup();
  };
}
