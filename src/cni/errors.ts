/**
 * CNI error codes (SPEC.md "Error" section) and the error type every verb throws. The skel turns
 * a CniError into the one JSON document a runtime reads from stdout; anything else becomes
 * code 999 with its message, so an operator always sees what went wrong.
 */

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  /** Plugin-specific (≥ 100): CHECK found the attachment different from what ADD makes. */
  AttachmentMismatch: 100,
  /** Plugin-specific: a network command failed or is missing, while observing or applying (its hint says which tool). */
  ApplyFailed: 101,
  Internal: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = "",
  ) {
    super(message);
    this.name = "CniError";
  }
}

export const configError = (msg: string, details = "") => new CniError(ErrorCode.InvalidConfig, msg, details);
export const envError = (msg: string, details = "") => new CniError(ErrorCode.InvalidEnvironment, msg, details);
