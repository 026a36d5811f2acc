/**
 * A verify worker thread: opens the image itself and checks its share of the page chunks
 * (see verify.ts), posting bytes done as it goes and the result at the end.
 */
import { parentPort, workerData } from "node:worker_threads";
import { openImage } from "./reader.js";
import { checkChunkShare } from "./verify.js";

const { path, share, of } = workerData as { path: string; share: number; of: number };
const image = await openImage(path, { tolerant: true });
try {
  let last = 0, current = 0;
  const result = await checkChunkShare(image, share, of, (done) => {
    current = done;
    // Progress at most every 16 MiB: messages are cheap but not free.
    if (done - last >= 16 << 20) parentPort!.postMessage({ done: (last = done) });
  });
  parentPort!.postMessage({ done: current, result });
} finally {
  await image.close();
}
