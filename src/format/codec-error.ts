/**
 * The one error every codec throws for input it cannot decode (or output it cannot produce).
 *
 * `detail` is a short phrase ("LZ4 match offset 70000 points before the output start");
 * `inputOffset` is where in the *compressed* input it went wrong, when the codec knows.
 * The image reader wraps a CodecError into its own error carrying the file offset of the chunk.
 */
export class CodecError extends Error {
  override name = "CodecError";
  readonly code = "BAD_CODEC";

  constructor(
    readonly detail: string,
    readonly inputOffset?: number,
  ) {
    super(inputOffset === undefined ? detail : `${detail} (compressed input offset ${inputOffset})`);
  }
}
