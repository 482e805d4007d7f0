/**
 * Protocol-wide size limits (SPEC.md, "Limits"). Decoders enforce them before
 * allocating, so a hostile peer cannot make a verifier do unbounded work.
 * Deployments may set lower limits; never higher ones.
 */
export const LIMITS = {
  /** UTF-8 bytes of one key name. */
  maxKeyNameBytes: 1024,
  /** Items (keys written) in one log entry. */
  maxItemsPerEntry: 1024,
  /** Devices listed in one causal context. */
  maxContextDevices: 1024,
  /** Bytes of an envelope carried inside an entry; larger values go to blobs. */
  maxInlineEnvelopeBytes: 65536,
  /** Bytes of one blob (an envelope stored beside the log). */
  maxBlobBytes: 64 * 1024 * 1024,
  /** Members one epoch record wraps its secret for. */
  maxEpochRecipients: 1024,
  /** Replica URLs one invitation names. */
  maxInvitationServers: 16,
  /** UTF-8 bytes of one replica URL in an invitation. */
  maxInvitationServerBytes: 1024,
  /** Bytes of one encoded entry. */
  maxEntryBytes: 4 * 1024 * 1024,
} as const;
