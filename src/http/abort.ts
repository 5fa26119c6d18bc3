import type { FastifyReply } from 'fastify';
import { NodeError } from '../errors.js';

/**
 * Aborts when the HTTP client goes away before its answer is sent, so a capture it queued is dropped
 * instead of taking the camera for nobody. The response's 'close' also comes after a normal answer:
 * only a close before the response finished counts. The listener goes with the response.
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new NodeError('cancelled', 'the HTTP client disconnected before the capture ran'));
  });
  return controller.signal;
}
