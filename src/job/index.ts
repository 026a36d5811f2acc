/**
 * Checkpointed jobs (`ckimg run`): launch or restore a job, checkpoint it periodically and on
 * signals into a run directory, survive a scheduler's preemption and requeue.
 */
export * from "./options.js";
export * from "./run-dir.js";
export * from "./guard.js";
export * from "./engine.js";
export * from "./status.js";
