/**
 * Reading what the camera app says on stderr. Every error in the apps is caught in `main` and printed
 * as `ERROR: *** <message> ***` before exiting with status 255; everything else on stderr is libcamera
 * chatter. Shared by the cold and (later) the warm camera.
 */

const APP_ERROR = /ERROR: \*\*\* (.*?) \*\*\*/;

/** Output kept from the app; more than this means something is badly wrong (and execa stops reading). */
export const MAX_APP_OUTPUT_BYTES = 1024 * 1024;

/** How much of stderr goes into a log record. */
const STDERR_TAIL_CHARS = 2000;

/** Longest message taken from the app into an error a client sees. */
const MAX_MESSAGE_CHARS = 300;

function bounded(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The message of the last `ERROR: *** … ***` line, if any. */
export function appErrorMessage(stderr: string): string | null {
  const lines = stderr.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = APP_ERROR.exec(lines[i] ?? '');
    if (match?.[1] !== undefined) return bounded(match[1].trim(), MAX_MESSAGE_CHARS);
  }
  return null;
}

/** The app's error message, else its last non-empty stderr line, else null. */
export function lastErrorLine(stderr: string): string | null {
  const error = appErrorMessage(stderr);
  if (error !== null) return error;
  const lines = stderr
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const last = lines.at(-1);
  return last === undefined ? null : bounded(last, MAX_MESSAGE_CHARS);
}

/** The app's own wording when it is run for a capture without a camera. */
export function isNoCameraError(message: string | null): boolean {
  return message !== null && /no cameras available/i.test(message);
}

/** The end of stderr for logs: the error is usually last, and a chatty run must not flood the log. */
export function stderrTail(stderr: string): string {
  return stderr.length > STDERR_TAIL_CHARS ? `…${stderr.slice(-STDERR_TAIL_CHARS)}` : stderr;
}

/** What a finished app run looked like, in the terms execa reports. */
export interface AppExit {
  exitCode?: number | undefined;
  signal?: string | undefined;
  stderr: string;
}

/**
 * A one-line reason for a failed run: the app's error, else the signal that killed it (its last
 * words are then libcamera chatter, not the reason), else its last words, else its exit status.
 */
export function describeAppFailure(exit: AppExit): string {
  const error = appErrorMessage(exit.stderr);
  if (error !== null) return error;
  if (exit.signal) return `killed by ${exit.signal}`;
  const line = lastErrorLine(exit.stderr);
  if (line !== null) return line;
  if (exit.exitCode !== undefined) return `exited with status ${exit.exitCode}`;
  return 'failed without output';
}
