/**
 * Resolves after the event loop has been through a poll phase, so pending I/O has been served: a
 * long computation awaits it between its parts to let short requests through.
 */
export const nextLoopTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
